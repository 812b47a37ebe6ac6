"""lifecycle app (issue 7)."""
