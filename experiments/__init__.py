"""experiments app (issue 7)."""
