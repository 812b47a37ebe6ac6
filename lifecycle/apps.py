"""App config: labels, backtests and backfills of rules."""

from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """Labels, backtests and backfills of rules."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "lifecycle"
    verbose_name = "Lifecycle"
