"""Models of custom functions."""
