"""The decision core: rules, entry points, templates, the engine and its audit trail."""

from django.apps import AppConfig


class RulesEngineConfig(AppConfig):
    """App config for the rules engine."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "rules_engine"
    verbose_name = "Rules engine"

    def ready(self) -> None:
        """Import the configured plugins, which register functions and action handlers."""
        import importlib

        from django.conf import settings

        import rules_engine.actions  # noqa: F401  (registers the built-in action handlers)

        for module in getattr(settings, "VERDICT_PLUGINS", []):
            importlib.import_module(module)
