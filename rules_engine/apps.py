"""The decision core: rules, entry points, templates, the engine and its audit trail."""

from django.apps import AppConfig


class RulesEngineConfig(AppConfig):
    """App config for the rules engine."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "rules_engine"
    verbose_name = "Rules engine"
