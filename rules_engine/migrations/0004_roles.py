"""The four roles as Django groups: viewer, author, publisher, administrator.

viewer reads rules, entry points, templates, rule changes, the audit trail, events, scheduled
actions, deliveries, cooldowns, named lists and WebAssembly functions (not destinations: they
hold signing secrets); author also writes rules, templates, entry points and named lists and
proposes rule changes; publisher also approves or rejects other people's rule changes
(`approve_rulechange`, four-eyes) and clears cooldowns; administrator holds
every permission that exists when this migration runs, API keys and users included.
Re-running it (or migrating back and forth) gives the same groups.
"""

from typing import Any

from django.db import migrations

VIEWER = [
    ("rules_engine", "view_entrypoint"),
    ("rules_engine", "view_rule"),
    ("rules_engine", "view_messagetemplate"),
    ("rules_engine", "view_rulechange"),
    ("rules_engine", "view_execution"),
    ("rules_engine", "view_acknowledgement"),
    ("rules_engine", "view_preference"),
    ("rules_engine", "view_subjectstate"),
    ("ingress", "view_event"),
    ("scheduling", "view_scheduledaction"),
    ("egress", "view_delivery"),
    ("egress", "view_deliveryattempt"),
    ("rules_engine", "view_cooldown"),
    ("functions", "view_namedlist"),
    ("functions", "view_wasmfunction"),
]
AUTHOR = [
    *VIEWER,
    *(
        ("rules_engine", f"{action}_{model}")
        for model in ("rule", "messagetemplate", "entrypoint")
        for action in ("add", "change", "delete")
    ),
    ("rules_engine", "add_rulechange"),
    # Lists are data rules read (blocklists): authors keep them. WebAssembly functions are
    # uploaded code: administrators only.
    *(("functions", f"{action}_namedlist") for action in ("add", "change", "delete")),
]
# Publishers also end cooldowns early (POST /api/cooldowns/clear/ needs add_cooldown).
PUBLISHER = [*AUTHOR, ("rules_engine", "approve_rulechange"), ("rules_engine", "add_cooldown")]
ROLES = {"viewer": VIEWER, "author": AUTHOR, "publisher": PUBLISHER}
ADMINISTRATOR = "administrator"


def create_roles(apps: Any, schema_editor: Any) -> None:
    """Create the groups with their permissions (creating the permissions first)."""
    from django.contrib.auth.management import create_permissions

    alias = schema_editor.connection.alias
    # Permissions are normally created after all migrations ran (post_migrate); a fresh
    # database has none yet, so create them for every app now.
    for app_config in apps.get_app_configs():
        # create_permissions skips app configs without models_module, as historical ones are.
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        try:
            create_permissions(app_config, verbosity=0, using=alias, apps=apps)
        finally:
            app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, wanted in ROLES.items():
        permissions = [
            permission_model.objects.using(alias).get(
                content_type__app_label=app_label, codename=codename
            )
            for app_label, codename in wanted
        ]
        group, _ = group_model.objects.using(alias).get_or_create(name=name)
        group.permissions.set(permissions)
    administrator, _ = group_model.objects.using(alias).get_or_create(name=ADMINISTRATOR)
    administrator.permissions.set(permission_model.objects.using(alias).all())


def delete_roles(apps: Any, schema_editor: Any) -> None:
    """Remove the four groups (users lose their roles; permissions stay)."""
    group_model = apps.get_model("auth", "Group")
    alias = schema_editor.connection.alias
    group_model.objects.using(alias).filter(name__in=[*ROLES, ADMINISTRATOR]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("rules_engine", "0003_rulechange"),
        ("ingress", "0001_initial"),
        ("scheduling", "0002_claim_token"),
        ("egress", "0001_initial"),
        # Administrators manage API keys: their permissions must exist when this runs.
        ("access", "0001_initial"),
        ("functions", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
