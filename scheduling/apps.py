"""Scheduling: delayed actions and periodic triggers (built out in the events issue)."""

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    """App config for scheduling."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "scheduling"
