"""Events API: accept, show status, cancel. Thin: serializers check shapes, services act."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from ingress import selectors, services
from ingress.models import Event
from ingress.serializers import (
    CancelByKeySerializer,
    CancelSerializer,
    EventCreateSerializer,
    EventSerializer,
)
from rules_engine.api.parsers import SafeJSONParser
from rules_engine.api.views import OpenJSONView
from rules_engine.errors import NotFound


def _accept(request: Request) -> Response:
    body = EventCreateSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    event, created = services.event_accept(**body.validated_data)
    return Response(
        {"id": str(event.pk), "status": event.status},
        status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
    )


def _get_event(event_id: Any) -> Event:
    event = selectors.event_get(event_id=event_id)
    if event is None:
        raise NotFound("unknown_event", f"no event {event_id}")
    return event


class NewEventView(OpenJSONView):
    """POST /new-event: accept an event (202 with its id; 200 for a known source+key)."""

    def post(self, request: Request) -> Response:
        """Store the event once and publish its processing after commit."""
        return _accept(request)


class StatusView(OpenJSONView):
    """GET /status/<id>: the event's status, decision, scheduled actions and deliveries."""

    def get(self, request: Request, event_id: str) -> Response:
        """Show one event."""
        return Response(EventSerializer(_get_event(event_id)).data)


class EventViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """/api/events/: accept (POST), show, cancel; listing is for staff.

    Filters on the list: `?status=`, `?type=`, `?source=`.
    """

    serializer_class = EventSerializer
    parser_classes = [SafeJSONParser]
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_permissions(self) -> list[Any]:
        if self.action == "list":
            return [IsAdminUser()]
        return [AllowAny()]

    def get_authenticators(self) -> list[Any]:
        # Accepting and cancelling events needs no session (no CSRF) until API keys exist.
        if getattr(self, "action", None) == "list" or self.request.method == "GET":
            return super().get_authenticators()
        return []

    def get_queryset(self) -> QuerySet[Event]:
        params = self.request.query_params
        return selectors.event_list(
            status=params.get("status"), type=params.get("type"), source=params.get("source")
        )

    def get_object(self) -> Event:
        return _get_event(self.kwargs["pk"])

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Accept an event (same contract as /new-event)."""
        return _accept(request)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel the event and all its pending actions; returns its status."""
        body = CancelSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        event = services.event_cancel(event=self.get_object(), **body.validated_data)
        return Response({"id": str(event.pk), "status": event.status})

    @action(detail=False, methods=["post"], url_path="cancel")
    def cancel_by_key(self, request: Request) -> Response:
        """Cancel by source and key; remembered (202) when the event has not arrived yet."""
        body = CancelByKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        event = services.event_cancel_by_key(**body.validated_data)
        if event is None:
            return Response({"status": "pending_cancellation"}, status=status.HTTP_202_ACCEPTED)
        return Response({"id": str(event.pk), "status": event.status})
