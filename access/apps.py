"""App config of access control (API keys)."""

from django.apps import AppConfig


class AccessConfig(AppConfig):
    """App config for API keys and their authentication."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "access"
    verbose_name = "Access"
