"""Celery tasks of egress (thin wrappers over `egress.services`)."""
