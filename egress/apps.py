"""Egress: webhooks and streams through a transactional outbox (built out in the events issue)."""

from django.apps import AppConfig


class EgressConfig(AppConfig):
    """App config for egress."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "egress"
