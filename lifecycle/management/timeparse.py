"""Instants given on the command line: ISO-8601 date-times or dates, UTC unless stated."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.core.management.base import CommandError
from django.utils.dateparse import parse_date, parse_datetime


def parse_instant(value: str) -> datetime:
    """An aware datetime from `2025-05-01T12:00:00+02:00` or `2025-05-01` (midnight UTC).

    Raises CommandError for anything else.
    """
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.combine(day, time.min)
    except ValueError as exc:
        raise CommandError(f"not an ISO-8601 date-time: {value!r} ({exc})") from exc
    if parsed is None:
        raise CommandError(f"not an ISO-8601 date-time: {value!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
