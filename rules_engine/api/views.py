"""API views: parse, call one service or the engine, serialise. No decisions are made here."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from rules_engine import engine, selectors, services
from rules_engine.api import serializers as s
from rules_engine.api.parsers import ORJSONRenderer, SafeJSONParser
from rules_engine.models import EntryPoint, Execution, MessageTemplate, Rule

KEY_REGEX = r"[a-z0-9][a-z0-9_.\-]{0,99}"


def _caller(request: Request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.get_username()}"
    return f"anonymous:{request.META.get('REMOTE_ADDR', '')}"


class VersionedModelViewSet(viewsets.ModelViewSet):
    """Model viewset whose writes go through the model's services (`services.VERSIONED_WRITES`).

    The serializer only checks shapes and types; the service validates, compiles, versions and
    records who changed what and why (`change_note`).
    """

    def _writes(self) -> services.VersionedWrites:
        return services.VERSIONED_WRITES[self.get_queryset().model]

    def perform_create(self, serializer: BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        note = data.pop("change_note", "")
        serializer.instance = self._writes().create(
            data=data, user=self.request.user, change_note=note
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        note = data.pop("change_note", "")
        serializer.instance = self._writes().update(
            self.get_object(), data=data, user=self.request.user, change_note=note
        )

    def perform_destroy(self, instance: Any) -> None:
        self._writes().delete(instance, user=self.request.user)


class OpenJSONView(APIView):
    """Base of the engine endpoints applications call: JSON in and out (orjson), no session.

    Open without authentication until API keys exist (issue "Trust"); no session also means no
    CSRF check for these machine-to-machine calls.
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [SafeJSONParser]
    renderer_classes = [ORJSONRenderer, BrowsableAPIRenderer]


class ExecuteView(OpenJSONView):
    """POST /api/rules/engine/execute/: a decision for `{entry_point, context, dry_run?}`."""

    def post(self, request: Request) -> Response:
        """Validate the body, run the engine, return the decision (400/404 on bad input)."""
        body = s.ExecuteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decision = engine.execute(
            entry_point=body.validated_data["entry_point"],
            context=body.validated_data["context"],
            dry_run=body.validated_data["dry_run"],
            caller=_caller(request),
            request_id=request.headers.get("X-Request-ID", "") or uuid.uuid4().hex,
        )
        return Response(decision.as_response())


class AcknowledgementView(OpenJSONView):
    """POST /api/rules/engine/acknowledgements/: the subject accepted the terms of an execution."""

    def post(self, request: Request) -> Response:
        """Record the acknowledgement (201, or 200 when it was already recorded)."""
        body = s.AcknowledgementRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ack, created = services.acknowledgement_record(**body.validated_data)
        payload = {
            "ack_key": ack.ack_key,
            "acknowledged": True,
            "accepted_at": ack.accepted_at.isoformat(),
        }
        return Response(payload, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PreferenceView(OpenJSONView):
    """POST /api/rules/engine/preferences/: the subject's answer to a preference question."""

    def post(self, request: Request) -> Response:
        """Store the answer (200 with the stored value)."""
        body = s.PreferenceRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preference = services.preference_record(**body.validated_data)
        return Response({"preference_key": preference.preference_key, "value": preference.value})


class EntryPointViewSet(VersionedModelViewSet):
    """CRUD for entry points (staff only); writes go through the services."""

    queryset = EntryPoint.objects.all()
    serializer_class = s.EntryPointSerializer
    lookup_field = "key"
    lookup_value_regex = KEY_REGEX
    parser_classes = [SafeJSONParser]


class MessageTemplateViewSet(VersionedModelViewSet):
    """CRUD for message templates (staff only); writes go through the services."""

    queryset = MessageTemplate.objects.all()
    serializer_class = s.MessageTemplateSerializer
    lookup_field = "key"
    lookup_value_regex = KEY_REGEX
    parser_classes = [SafeJSONParser]


class RuleViewSet(VersionedModelViewSet):
    """CRUD for rules plus their history and rollback (staff only).

    Filters: `?entry_point=<key>`, `?active=true|false`.
    """

    queryset = Rule.objects.all()
    serializer_class = s.RuleSerializer
    lookup_value_regex = "[0-9a-f-]{36}"
    parser_classes = [SafeJSONParser]

    def get_queryset(self) -> QuerySet[Rule]:
        queryset = Rule.objects.select_related("entry_point", "created_by", "updated_by")
        entry_point = self.request.query_params.get("entry_point")
        if entry_point:
            queryset = queryset.filter(entry_point__key=entry_point)
        active = self.request.query_params.get("active")
        if active in {"true", "false"}:
            queryset = queryset.filter(active=active == "true")
        return queryset

    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Every version of the rule, newest first, each with its changes from the one before."""
        records = selectors.rule_history(rule=self.get_object())
        page = self.paginate_queryset(records)
        serializer = s.RuleHistorySerializer(page if page is not None else records, many=True)
        if page is not None:
            return self.get_paginated_response(serializer.data)
        return Response(serializer.data)

    @action(detail=True, methods=["post"], serializer_class=s.RollbackRequestSerializer)
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        """Store version `{"version": n}` again as a new version; returns the rule."""
        body = s.RollbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = services.rule_rollback(
            rule=self.get_object(), version=body.validated_data["version"], user=request.user
        )
        return Response(s.RuleSerializer(rule).data)


class ExecutionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail (staff only, read-only).

    Filters: `?entry_point=<key>`, `?outcome=matched|no_match|error`, `?rule=<uuid>`,
    `?since=<ISO time>`, `?until=<ISO time>`.
    """

    serializer_class = s.ExecutionSerializer

    def get_queryset(self) -> QuerySet[Execution]:
        params = self.request.query_params
        filters = s.ExecutionFilterSerializer(data=params)
        filters.is_valid(raise_exception=True)
        query = dict(filters.validated_data)
        if "rule" in query:
            query["rule_id"] = query.pop("rule")
        return selectors.execution_list(**query)


class CooldownViewSet(viewsets.ViewSet):
    """Active cooldowns (staff): `GET /api/cooldowns/?rule=<id>`, `POST /api/cooldowns/clear/`."""

    parser_classes = [SafeJSONParser]

    def list(self, request: Request) -> Response:
        """Every active cooldown (or one rule's), with the milliseconds left."""
        query = s.CooldownFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rule = query.validated_data.get("rule")
        return Response(selectors.cooldowns_active(rule_id=str(rule) if rule else None))

    @action(detail=False, methods=["post"])
    def clear(self, request: Request) -> Response:
        """End the cooldowns of `{"rule": id, "subject"?: s}`; returns how many ended."""
        body = s.CooldownFilterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if "rule" not in body.validated_data:
            raise ValidationError({"rule": ["This field is required."]})
        cleared = services.cooldown_clear(
            rule_id=str(body.validated_data["rule"]),
            subject=body.validated_data.get("subject"),
        )
        return Response({"cleared": cleared})
