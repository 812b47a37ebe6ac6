"""Celery tasks of scheduling (thin wrappers over `scheduling.services`)."""
