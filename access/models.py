"""Models of access control."""
