"""Lifecycle permissions for the four roles (rules_engine 0004_roles).

viewer sees labels, backtests and backfill runs; author also uploads labels and starts and
cancels backtests (change_backtest is "cancel": backtests are never edited); publisher has
what authors have; administrator every lifecycle permission.
"""

from typing import Any

from django.db import migrations

VIEWER = ["view_label", "view_backtest", "view_backfillrun"]
AUTHOR = [*VIEWER, "add_label", "add_backtest", "change_backtest"]
ROLES = {"viewer": VIEWER, "author": AUTHOR, "publisher": AUTHOR}


def _permissions(apps: Any, alias: str) -> Any:
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; create lifecycle's now.
    app_config = apps.get_app_config("lifecycle")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    try:
        create_permissions(app_config, verbosity=0, using=alias, apps=apps)
    finally:
        app_config.models_module = models_module
    return apps.get_model("auth", "Permission").objects.using(alias).filter(
        content_type__app_label="lifecycle"
    )


def grant(apps: Any, schema_editor: Any) -> None:
    """Add lifecycle permissions to the role groups (other permissions are left alone)."""
    alias = schema_editor.connection.alias
    permissions = _permissions(apps, alias)
    groups = apps.get_model("auth", "Group").objects.using(alias)
    for name, codenames in ROLES.items():
        group, _ = groups.get_or_create(name=name)
        group.permissions.add(*permissions.filter(codename__in=codenames))
    administrator, _ = groups.get_or_create(name="administrator")
    administrator.permissions.add(*permissions)


def revoke(apps: Any, schema_editor: Any) -> None:
    """Remove lifecycle permissions from the role groups."""
    alias = schema_editor.connection.alias
    permissions = _permissions(apps, alias)
    for group in apps.get_model("auth", "Group").objects.using(alias).filter(
        name__in=[*ROLES, "administrator"]
    ):
        group.permissions.remove(*permissions)


class Migration(migrations.Migration):
    """Grant lifecycle permissions to the roles."""

    dependencies = [
        ("lifecycle", "0001_initial"),
        ("rules_engine", "0004_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
