"""DRF filter backend: an API key limited to some entry points sees only their rows.

A key's entry-point list (`ApiKey.entry_points`) limits what it may execute and send as
events; the same list limits what it may read and change through the management API, so a
key made for one team's entry point cannot list another team's audit rows, events or rules.
Each view says which field of its rows names the entry point (`key_entry_point_field`, or
None for rows that belong to no entry point, like message templates); a view that says
nothing is refused to such keys rather than shown unfiltered.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from access.authentication import request_key

UNSET = object()


def entry_point_field(view: Any) -> str | None:
    """The view's `key_entry_point_field`. Raises ImproperlyConfigured when it has none."""
    field = getattr(view, "key_entry_point_field", UNSET)
    if field is UNSET:
        raise ImproperlyConfigured(
            f"{type(view).__name__} serves API keys but does not set key_entry_point_field"
        )
    return field  # type: ignore[return-value]


class KeyEntryPointFilter(BaseFilterBackend):
    """Rows of the entry points the request's API key may use (all rows for sessions and for
    keys without an entry-point list). Lists shrink; a row outside them is a 404 by id."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        """`queryset` restricted to the key's entry points, when it has a list."""
        key = request_key(request)
        if key is None or not key.entry_points:
            return queryset
        field = entry_point_field(view)
        if field is None:
            return queryset
        return queryset.filter(**{f"{field}__in": sorted(key.entry_points)})
