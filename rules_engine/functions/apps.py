"""App config of custom functions: named lists and sandboxed WebAssembly modules."""

from django.apps import AppConfig


class FunctionsConfig(AppConfig):
    """App config for the functions callable from rules (label `functions`)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "rules_engine.functions"
    label = "functions"
    verbose_name = "Functions"

    def ready(self) -> None:
        """Register the operators backed by stored data (`in_list`, `wasm`)."""
        from rules_engine.functions import operators

        operators.register()
