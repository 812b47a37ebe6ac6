"""Events API: accept, show status, cancel. Thin: serializers check shapes, services act."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from access.permissions import KeyScopeOrStaff, ScopeOrModelPermission, require_entry_point
from ingress import hot_path, selectors, services
from ingress.models import Event
from ingress.serializers import (
    CancelByKeySerializer,
    CancelSerializer,
    EventAcceptedSerializer,
    EventCreateSerializer,
    EventFilterSerializer,
    EventSerializer,
    PendingCancellationSerializer,
)
from rules_engine.api.parsers import SafeJSONParser
from rules_engine.api.schema import error_responses
from rules_engine.api.views import OpenJSONView
from rules_engine.cache import one_generation
from rules_engine.errors import NotFound


def _accept(request: Request) -> Response:
    body = EventCreateSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    require_entry_point(request, body.validated_data["type"])
    event, created = services.event_accept(**body.validated_data)
    return Response(
        {"id": str(event.pk), "status": event.status},
        status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
    )


# The OpenAPI description of accepting an event (two routes, one contract).
_ACCEPT_SCHEMA: dict[str, Any] = dict(
    request=EventCreateSerializer,
    responses={
        202: OpenApiResponse(EventAcceptedSerializer, "Accepted: a new event."),
        200: OpenApiResponse(EventAcceptedSerializer, "A known source and key: that event."),
        **error_responses(400, 404, 409, 413),
    },
)


def _get_event(request: Request, event_id: Any) -> Event:
    event = selectors.event_get(event_id=event_id)
    if event is None:
        raise NotFound("unknown_event", f"no event {event_id}")
    require_entry_point(request, event.type)
    return event


# Sending and cancelling events needs the events scope; reading one, events or read.
EVENT_SCOPES = {"GET": ("events", "read"), "HEAD": ("events", "read"), "*": ("events",)}


class NewEventView(OpenJSONView):
    """POST /new-event: accept an event (202 with its id; 200 for a known source+key).

    The common call (API key, plain JSON body) is answered by `hot_path.answer` without DRF's
    dispatch; everything else, refusals included, by DRF.
    """

    key_scopes = EVENT_SCOPES

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """The hot path when it applies, else DRF's dispatch (one generation-stamp read)."""
        with one_generation():
            response = hot_path.answer(self, request)
            if response is not None:
                return response
            return super().dispatch(request, *args, **kwargs)

    @extend_schema(operation_id="new_event", **_ACCEPT_SCHEMA)
    def post(self, request: Request) -> Response:
        """Store the event once and publish its processing after commit."""
        return _accept(request)


class StatusView(OpenJSONView):
    """GET /status/<id>: the event's status, decision, scheduled actions and deliveries."""

    key_scopes = EVENT_SCOPES

    @extend_schema(
        operation_id="event_status", responses={200: EventSerializer, **error_responses(404)}
    )
    def get(self, request: Request, event_id: str) -> Response:
        """Show one event."""
        return Response(EventSerializer(_get_event(request, event_id)).data)


@extend_schema_view(
    list=extend_schema(parameters=[EventFilterSerializer]),
    create=extend_schema(**_ACCEPT_SCHEMA),
    retrieve=extend_schema(responses={200: EventSerializer, **error_responses(404)}),
)
class EventViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """/api/events/: accept (POST), show, cancel (keys with the events scope); list (keys
    with read, or staff with the view permission).

    Filters on the list: `?status=`, `?type=`, `?source=`.
    """

    serializer_class = EventSerializer
    parser_classes = [SafeJSONParser]
    lookup_value_regex = "[0-9a-f-]{36}"
    key_scopes = EVENT_SCOPES
    key_entry_point_field = "type"

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """Accepting an event takes the hot path when it applies (see NewEventView)."""
        if getattr(self, "action_map", {}).get("post") == "create":
            with one_generation():
                response = hot_path.answer(self, request)
                if response is not None:
                    return response
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    def get_permissions(self) -> list[Any]:
        if self.action == "list":
            return [ScopeOrModelPermission()]
        return [KeyScopeOrStaff()]

    def get_queryset(self) -> QuerySet[Event]:
        if self.action != "list":
            return selectors.event_list()
        # A bad filter is a 400, not an empty list (or a database error for a NUL).
        filters = EventFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.event_list(**filters.validated_data)

    def get_object(self) -> Event:
        return _get_event(self.request, self.kwargs["pk"])

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Accept an event (same contract as /new-event)."""
        return _accept(request)

    @extend_schema(
        request=CancelSerializer,
        responses={200: EventAcceptedSerializer, **error_responses(400, 404)},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel the event and all its pending actions; returns its status."""
        body = CancelSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        event = services.event_cancel(event=self.get_object(), **body.validated_data)
        return Response({"id": str(event.pk), "status": event.status})

    @extend_schema(
        operation_id="api_events_cancel_by_key",
        request=CancelByKeySerializer,
        responses={
            200: OpenApiResponse(EventAcceptedSerializer, "The event was cancelled."),
            202: OpenApiResponse(
                PendingCancellationSerializer, "Not arrived yet: remembered and applied."
            ),
            **error_responses(400),
        },
    )
    @action(detail=False, methods=["post"], url_path="cancel")
    def cancel_by_key(self, request: Request) -> Response:
        """Cancel by source and key; remembered (202) when the event has not arrived yet."""
        body = CancelByKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if getattr(request.auth, "entry_points", None):
            event_type = selectors.event_type_by_key(
                source=body.validated_data["source"], key=body.validated_data["key"]
            )
            if event_type is not None:
                require_entry_point(request, event_type)
        event = services.event_cancel_by_key(**body.validated_data)
        if event is None:
            return Response({"status": "pending_cancellation"}, status=status.HTTP_202_ACCEPTED)
        return Response({"id": str(event.pk), "status": event.status})
