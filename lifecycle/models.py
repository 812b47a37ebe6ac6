"""Models of lifecycle."""
