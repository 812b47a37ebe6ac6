"""Models of experiments."""
