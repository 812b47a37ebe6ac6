"""Ingress: events arriving over REST and Redis Streams (built out in the events issue)."""

from django.apps import AppConfig


class IngressConfig(AppConfig):
    """App config for ingress."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "ingress"
