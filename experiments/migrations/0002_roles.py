"""Experiment permissions for the roles of rules_engine/migrations/0004_roles.py.

viewer reads experiments and variants; author and publisher also create, change, start, stop
and delete them (promoting also needs `change_rule`, which they hold); administrator holds
every permission. Re-running it gives the same grants.
"""

from typing import Any

from django.db import migrations

VIEW = [("experiments", "view_experiment"), ("experiments", "view_variant")]
WRITE = [
    *VIEW,
    *(
        ("experiments", f"{action}_{model}")
        for model in ("experiment", "variant")
        for action in ("add", "change", "delete")
    ),
]
GRANTS = {"viewer": VIEW, "author": WRITE, "publisher": WRITE, "administrator": WRITE}


def grant(apps: Any, schema_editor: Any) -> None:
    """Create this app's permissions and add them to the existing role groups."""
    from django.contrib.auth.management import create_permissions

    alias = schema_editor.connection.alias
    app_config = apps.get_app_config("experiments")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    try:
        create_permissions(app_config, verbosity=0, using=alias, apps=apps)
    finally:
        app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, wanted in GRANTS.items():
        group = group_model.objects.using(alias).filter(name=name).first()
        if group is None:
            continue
        for app_label, codename in wanted:
            group.permissions.add(
                permission_model.objects.using(alias).get(
                    content_type__app_label=app_label, codename=codename
                )
            )


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0001_initial"),
        ("rules_engine", "0004_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
