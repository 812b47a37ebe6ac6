"""Models of access control: the API keys applications authenticate with."""

from __future__ import annotations

from django.conf import settings
from django.db import models

SCOPES = ("execute", "events", "read", "manage")


class ApiKey(models.Model):
    """An application's credential, sent as `Authorization: Api-Key <key>`.

    Only a SHA-256 digest of the key is stored (keys are 256-bit random tokens, so a fast hash
    is enough); the key itself is shown once, when it is created. `scopes` say which endpoints
    it may call, `entry_points` (empty: all) which entry points or event types. A publishable
    key is for browsers: execute scope only, named entry points only, and only from
    `allowed_origins` (checked against the request's Origin header, answered with CORS).
    """

    KIND_SECRET = "secret"  # noqa: S105 (a kind of key, not a password)
    KIND_PUBLISHABLE = "publishable"
    KIND_CHOICES = [(KIND_SECRET, "secret (server to server)"), (KIND_PUBLISHABLE, "publishable")]

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=12, choices=KIND_CHOICES, default=KIND_SECRET)
    # The key's public beginning (e.g. "vk_sk_3f9a1c2b"): shown in lists and logs to say
    # which key was used, useless to authenticate with.
    prefix = models.CharField(max_length=24, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    entry_points = models.JSONField(default=list, blank=True)
    allowed_origins = models.JSONField(default=list, blank=True)
    # "<count>/<second|minute|hour|day>"; empty uses settings VERDICT["API_KEY_RATE"].
    rate = models.CharField(max_length=32, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def active(self) -> bool:
        """False once the key is revoked."""
        return self.revoked_at is None
