"""App config: rollups of rule evaluations and their dashboards."""

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Rollups of rule evaluations and their dashboards."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"
    verbose_name = "Analytics"
