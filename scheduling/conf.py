"""Knobs of scheduling, read from `settings.VERDICT` with the defaults below.

Read on every use (not at import), so tests and `override_settings` see changes at once.
"""

from __future__ import annotations

from django.conf import settings

DEFAULTS: dict[str, float] = {
    # How far ahead of `due_at` the sweeper publishes a row to Celery (seconds). It must exceed
    # the sweep interval plus the publish time, or actions start late; Celery never holds more.
    "SCHEDULE_HORIZON_SECONDS": 2.0,
    # How long a claimed (running) row may stay running before recovery runs it again.
    "SCHEDULE_LEASE_SECONDS": 60.0,
    # How long past its due time an enqueued row may wait for its message before recovery
    # publishes it again (the message was lost, or the worker holding it died).
    "SCHEDULE_REPUBLISH_AFTER": 10.0,
    # Rows claimed per sweeper query (a sweep loops until the due rows are all published).
    "SCHEDULE_BATCH": 500,
    # Rows due within this many milliseconds of each other travel in one Celery message.
    "SCHEDULE_SLICE_MS": 10.0,
    # ... and at most this many rows per message.
    "SCHEDULE_SLICE_MAX": 50,
    # A row claimed this many times without finishing (its worker keeps dying) is failed.
    "SCHEDULE_MAX_ATTEMPTS": 5,
    # The pause between two rounds of `manage.py scheduling_sweep` (seconds).
    "SCHEDULE_SWEEP_INTERVAL": 0.2,
}


def setting(name: str) -> float:
    """One knob: `settings.VERDICT[name]` if set, else its default. Raises KeyError if unknown."""
    default = DEFAULTS[name]
    return float(getattr(settings, "VERDICT", {}).get(name, default))
