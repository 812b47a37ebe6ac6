"""analytics app (issue 7)."""
