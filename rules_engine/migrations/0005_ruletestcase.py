"""RuleTestCase: saved test cases of rules (issue 7), and the roles' permissions on them.

viewer reads test cases; author and publisher also write them; administrator holds them all.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

ROLE_ACTIONS = {
    "viewer": ("view",),
    "author": ("view", "add", "change", "delete"),
    "publisher": ("view", "add", "change", "delete"),
    "administrator": ("view", "add", "change", "delete"),
}


def grant(apps: Any, schema_editor: Any) -> None:
    """Give the roles their permissions on test cases (creating the permissions first)."""
    from django.contrib.auth.management import create_permissions

    alias = schema_editor.connection.alias
    # Permissions are normally created after all migrations ran (post_migrate).
    app_config = apps.get_app_config("rules_engine")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    try:
        create_permissions(app_config, verbosity=0, using=alias, apps=apps)
    finally:
        app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, actions in ROLE_ACTIONS.items():
        group = group_model.objects.using(alias).filter(name=name).first()
        if group is None:
            continue
        group.permissions.add(
            *permission_model.objects.using(alias).filter(
                content_type__app_label="rules_engine",
                codename__in=[f"{action}_ruletestcase" for action in actions],
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("rules_engine", "0004_roles"),
    ]

    operations = [
        migrations.CreateModel(
            name="RuleTestCase",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=200)),
                ("context", models.JSONField(default=dict)),
                ("expect_match", models.BooleanField(default=True)),
                ("expect_actions", models.JSONField(blank=True, default=list)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "rule",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="test_cases",
                        to="rules_engine.rule",
                    ),
                ),
            ],
            options={
                "ordering": ["rule", "name"],
                "constraints": [
                    models.UniqueConstraint(fields=("rule", "name"), name="testcase_rule_name")
                ],
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
