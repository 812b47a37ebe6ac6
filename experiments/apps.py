"""App config: a/b experiments and percentage rollouts of rules."""

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """A/B experiments and percentage rollouts of rules."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "experiments"
    verbose_name = "Experiments"
