"""App config of access control (API keys, roles)."""

from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _administrator_after_migrate(sender: AppConfig, using: str = "default", **_: Any) -> None:
    # Once per migrate, after the last app's permissions exist (Django creates them in an
    # earlier post_migrate receiver): models added since the roles migration included.
    if sender is list(apps.get_app_configs())[-1]:
        from access.services import role_administrator_sync

        role_administrator_sync(using=using)


class AccessConfig(AppConfig):
    """App config for API keys and their authentication."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        """Keep the administrator role holding every permission after each migrate."""
        post_migrate.connect(_administrator_after_migrate, dispatch_uid="verdict-administrator")
