"""The decision core: rules, entry points, templates, the engine and its audit trail."""

from typing import Any

from django.apps import AppConfig


class RulesEngineConfig(AppConfig):
    """App config for the rules engine."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "rules_engine"
    verbose_name = "Rules engine"

    def ready(self) -> None:
        """Register the built-in functions, apply the evaluation limits, import the plugins.

        Plugins register further functions and action handlers. Raises ValueError if a plugin
        took a built-in function's name, ImportError for a missing plugin.
        """
        import importlib

        from django.conf import settings
        from django.core.signals import setting_changed

        import rules_engine.actions  # noqa: F401  (registers the built-in action handlers)
        from rules_engine.conditions import configure_limits
        from rules_engine.functions.builtins import register_builtins

        register_builtins()
        configure_limits()
        # Tests override VERDICT; the limits follow (they are process-wide, read at run time).
        setting_changed.connect(_verdict_changed, dispatch_uid="rules_engine.limits")

        for module in getattr(settings, "VERDICT_PLUGINS", []):
            importlib.import_module(module)


def _verdict_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "VERDICT":
        from rules_engine.conditions import configure_limits

        configure_limits()
