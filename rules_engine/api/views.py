"""API views: parse, call one service or the engine, serialise. No decisions are made here."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from access.authentication import ApiKeyAuthentication, request_key
from access.permissions import (
    KeyScopeOrStaff,
    require_entry_point,
    require_written_entry_point,
)
from rules_engine import cache, engine, selectors, services
from rules_engine.api import hot_path
from rules_engine.api import serializers as s
from rules_engine.api.parsers import ORJSONRenderer, SafeJSONParser
from rules_engine.api.schema import error_responses
from rules_engine.models import (
    Cooldown,
    EntryPoint,
    Execution,
    MessageTemplate,
    Rule,
    RuleChange,
)

KEY_REGEX = r"[a-z0-9][a-z0-9_.\-]{0,99}"


def _caller(request: Request) -> str:
    # An API key's user is `key:<prefix>`, a session user `user:<name>`.
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        name = user.get_username()
        return name if name.startswith("key:") else f"user:{name}"
    return f"anonymous:{request.META.get('REMOTE_ADDR', '')}"


class VersionedModelViewSet(viewsets.ModelViewSet):
    """Model viewset whose writes go through the model's services (`services.VERSIONED_WRITES`).

    The serializer only checks shapes and types; the service validates, compiles, versions and
    records who changed what and why (`change_note`).

    `written_entry_point_field`: the field of a write naming its entry point, which an API key
    limited to other entry points may not name (None: the model belongs to no entry point).
    """

    written_entry_point_field: str | None = None

    def _writes(self) -> services.VersionedWrites:
        return services.VERSIONED_WRITES[self.get_queryset().model]

    def check_written_entry_point(self, serializer: BaseSerializer) -> None:
        """Refuse (403) a write naming an entry point the request's key may not use."""
        if self.written_entry_point_field is not None:
            value = serializer.validated_data.get(self.written_entry_point_field)
            require_written_entry_point(self.request, value)

    def perform_create(self, serializer: BaseSerializer) -> None:
        self.check_written_entry_point(serializer)
        data = dict(serializer.validated_data)
        note = data.pop("change_note", "")
        serializer.instance = self._writes().create(
            data=data, user=self.request.user, change_note=note
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        self.check_written_entry_point(serializer)
        data = dict(serializer.validated_data)
        note = data.pop("change_note", "")
        serializer.instance = self._writes().update(
            self.get_object(), data=data, user=self.request.user, change_note=note
        )

    def perform_destroy(self, instance: Any) -> None:
        self._writes().delete(instance, user=self.request.user)


class OpenJSONView(APIView):
    """Base of the endpoints applications call: JSON in and out (orjson).

    Callers present an API key holding one of `key_scopes` (per HTTP method); staff sessions
    (browsable API, playground) pass too, with Django's CSRF check. The whole request reads
    the shared generation stamp once: the key check and the ruleset lookup share it.
    """

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [KeyScopeOrStaff]
    key_scopes: dict[str, tuple[str, ...]] = {"*": ("execute",)}
    parser_classes = [SafeJSONParser]
    renderer_classes = [ORJSONRenderer, BrowsableAPIRenderer]

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """DRF's dispatch inside one generation-stamp read (see `rules_engine.cache`)."""
        with cache.one_generation():
            return super().dispatch(request, *args, **kwargs)


def _require_execution_entry_point(request: Request, execution_id: Any) -> None:
    # Only keys limited to some entry points pay for this lookup; an unknown execution is
    # left to the service, which answers 404.
    key = request.auth
    if getattr(key, "entry_points", None):
        entry_point = selectors.execution_entry_point_key(execution_id=execution_id)
        if entry_point is not None:
            require_entry_point(request, entry_point)


class ExecuteView(OpenJSONView):
    """POST /api/rules/engine/execute/: a decision for `{entry_point, context, dry_run?}`.

    The common call (API key, plain JSON body) is answered by `hot_path.answer` without DRF's
    dispatch; everything else, refusals included, by DRF below.
    """

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """The hot path when it applies, else DRF's dispatch (one generation-stamp read)."""
        with cache.one_generation():
            response = hot_path.answer(self, request)
            if response is not None:
                return response
            return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        operation_id="engine_execute",
        request=s.ExecuteRequestSerializer,
        responses={200: s.ExecuteResponseSerializer, **error_responses(400, 404, 413)},
    )
    def post(self, request: Request) -> Response:
        """Validate the body, run the engine, return the decision (400/404 on bad input)."""
        body = s.ExecuteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        require_entry_point(request, body.validated_data["entry_point"])
        key = request_key(request)
        if key is not None and key.publishable and body.validated_data["dry_run"]:
            # A publishable key is public (it sits in a web page): a dry run would show anyone
            # every rule's logic (and pick the rules' clock with `now`).
            raise PermissionDenied(
                "a publishable key may not ask for a dry run", code="publishable_key_limited"
            )
        decision = engine.execute(
            entry_point=body.validated_data["entry_point"],
            context=body.validated_data["context"],
            dry_run=body.validated_data["dry_run"],
            now=body.validated_data["now"],
            caller=_caller(request),
            request_id=request.headers.get("X-Request-ID", "") or uuid.uuid4().hex,
        )
        return Response(decision.as_response())


class AcknowledgementView(OpenJSONView):
    """POST /api/rules/engine/acknowledgements/: the subject accepted the terms of an execution."""

    @extend_schema(
        operation_id="engine_acknowledge",
        request=s.AcknowledgementRequestSerializer,
        responses={
            201: OpenApiResponse(s.AcknowledgementResponseSerializer, "Recorded now."),
            200: OpenApiResponse(s.AcknowledgementResponseSerializer, "Already recorded."),
            **error_responses(400, 404, 413),
        },
    )
    def post(self, request: Request) -> Response:
        """Record the acknowledgement (201, or 200 when it was already recorded)."""
        body = s.AcknowledgementRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _require_execution_entry_point(request, body.validated_data["execution_id"])
        ack, created = services.acknowledgement_record(**body.validated_data)
        payload = {
            "ack_key": ack.ack_key,
            "acknowledged": True,
            "accepted_at": ack.accepted_at.isoformat(),
        }
        return Response(payload, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PreferenceView(OpenJSONView):
    """POST /api/rules/engine/preferences/: the subject's answer to a preference question."""

    @extend_schema(
        operation_id="engine_preference",
        request=s.PreferenceRequestSerializer,
        responses={200: s.PreferenceResponseSerializer, **error_responses(400, 404, 413)},
    )
    def post(self, request: Request) -> Response:
        """Store the answer (200 with the stored value)."""
        body = s.PreferenceRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _require_execution_entry_point(request, body.validated_data["execution_id"])
        preference = services.preference_record(**body.validated_data)
        return Response({"preference_key": preference.preference_key, "value": preference.value})


class EntryPointViewSet(VersionedModelViewSet):
    """CRUD for entry points (staff only); writes go through the services."""

    queryset = EntryPoint.objects.all()
    serializer_class = s.EntryPointSerializer
    key_entry_point_field = "key"
    written_entry_point_field = "key"
    lookup_field = "key"
    lookup_value_regex = KEY_REGEX
    parser_classes = [SafeJSONParser]


class MessageTemplateViewSet(VersionedModelViewSet):
    """CRUD for message templates (staff only); writes go through the services."""

    queryset = MessageTemplate.objects.all()
    serializer_class = s.MessageTemplateSerializer
    # Templates belong to no entry point: every key with the scope sees them all.
    key_entry_point_field = None
    lookup_field = "key"
    lookup_value_regex = KEY_REGEX
    parser_classes = [SafeJSONParser]


DRAFTED = OpenApiResponse(
    s.RuleChangeSerializer, "The rule is on a critical entry point: stored as a draft for review."
)


class _Drafted(Exception):
    """A rule write became a draft (critical entry point); the view answers 202 with it."""

    def __init__(self, change: RuleChange) -> None:
        super().__init__(f"draft #{change.pk}")
        self.change = change


def _or_draft(handler: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
    try:
        response: Response = handler(request, *args, **kwargs)
    except _Drafted as drafted:
        return Response(
            s.RuleChangeSerializer(drafted.change).data, status=status.HTTP_202_ACCEPTED
        )
    return response


@extend_schema_view(list=extend_schema(parameters=[s.RuleFilterSerializer]))
class RuleViewSet(VersionedModelViewSet):
    """CRUD for rules plus their history and rollback (staff only).

    Filters: `?entry_point=<key>`, `?active=true|false`.
    """

    queryset = Rule.objects.all()
    serializer_class = s.RuleSerializer
    key_entry_point_field = "entry_point__key"
    written_entry_point_field = "entry_point"
    lookup_value_regex = "[0-9a-f-]{36}"
    parser_classes = [SafeJSONParser]

    def get_queryset(self) -> QuerySet[Rule]:
        queryset = Rule.objects.select_related("entry_point", "created_by", "updated_by")
        if self.action != "list":
            return queryset
        # A bad filter is a 400, not an empty or unfiltered list.
        # A plain dict: DRF reads a boolean missing from a QueryDict as False (form checkbox).
        filters = s.RuleFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        if entry_point := filters.validated_data.get("entry_point"):
            queryset = queryset.filter(entry_point__key=entry_point)
        if "active" in filters.validated_data:
            queryset = queryset.filter(active=filters.validated_data["active"])
        return queryset

    @extend_schema(responses={200: s.RuleHistoryPageSerializer, **error_responses(404)})
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Every version of the rule, newest first, each with its changes from the one before."""
        records = selectors.rule_history(rule=self.get_object())
        page = self.paginate_queryset(records)
        serializer = s.RuleHistorySerializer(page if page is not None else records, many=True)
        if page is not None:
            return self.get_paginated_response(serializer.data)
        return Response(serializer.data)

    @extend_schema(
        request=s.RollbackRequestSerializer,
        responses={200: s.RuleSerializer, 202: DRAFTED, **error_responses(400, 404)},
    )
    @action(detail=True, methods=["post"], serializer_class=s.RollbackRequestSerializer)
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        """Store version `{"version": n}` again as a new version; returns the rule.

        On a critical entry point the rollback is stored as a draft for review (202).
        """
        body = s.RollbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = self.get_object()
        if selectors.rule_needs_review(rule_id=rule.pk):
            change = services.rule_change_propose(
                operation="rollback",
                rule=rule,
                version=body.validated_data["version"],
                user=request.user,
            )
            return Response(s.RuleChangeSerializer(change).data, status=status.HTTP_202_ACCEPTED)
        rule = services.rule_rollback(
            rule=rule, version=body.validated_data["version"], user=request.user
        )
        return Response(s.RuleSerializer(rule).data)

    # Four-eyes: writes to rules on critical entry points become drafts (202 with the draft).

    @extend_schema(responses={201: s.RuleSerializer, 202: DRAFTED, **error_responses(400)})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a rule (201), or on a critical entry point a draft for review (202)."""
        return _or_draft(super().create, request, *args, **kwargs)

    @extend_schema(responses={200: s.RuleSerializer, 202: DRAFTED, **error_responses(400, 404)})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change a rule (200), or on a critical entry point a draft for review (202)."""
        return _or_draft(super().update, request, *args, **kwargs)

    @extend_schema(responses={200: s.RuleSerializer, 202: DRAFTED, **error_responses(400, 404)})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change some fields of a rule (200), or a draft for review (202)."""
        return _or_draft(super().partial_update, request, *args, **kwargs)

    @extend_schema(responses={204: None, 202: DRAFTED, **error_responses(404)})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete a rule (204), or on a critical entry point a draft of the deletion (202)."""
        return _or_draft(super().destroy, request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer) -> None:
        self.check_written_entry_point(serializer)
        data = dict(serializer.validated_data)
        if selectors.rule_needs_review(entry_point=data.get("entry_point")):
            note = data.pop("change_note", "")
            raise _Drafted(
                services.rule_change_propose(
                    operation="create", data=data, user=self.request.user, change_note=note
                )
            )
        super().perform_create(serializer)

    def perform_update(self, serializer: BaseSerializer) -> None:
        self.check_written_entry_point(serializer)
        data = dict(serializer.validated_data)
        rule = self.get_object()
        if selectors.rule_needs_review(rule_id=rule.pk, entry_point=data.get("entry_point")):
            note = data.pop("change_note", "")
            raise _Drafted(
                services.rule_change_propose(
                    operation="update",
                    rule=rule,
                    data=data,
                    user=self.request.user,
                    change_note=note,
                )
            )
        super().perform_update(serializer)

    def perform_destroy(self, instance: Any) -> None:
        if selectors.rule_needs_review(rule_id=instance.pk):
            raise _Drafted(
                services.rule_change_propose(
                    operation="delete", rule=instance, user=self.request.user
                )
            )
        super().perform_destroy(instance)


@extend_schema_view(list=extend_schema(parameters=[s.ExecutionFilterSerializer]))
class ExecutionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail (staff only, read-only).

    Filters: `?entry_point=<key>`, `?outcome=matched|no_match|error`, `?rule=<uuid>`,
    `?since=<ISO time>`, `?until=<ISO time>`.
    """

    serializer_class = s.ExecutionSerializer
    key_entry_point_field = "entry_point__key"

    def get_queryset(self) -> QuerySet[Execution]:
        params = self.request.query_params
        filters = s.ExecutionFilterSerializer(data=params)
        filters.is_valid(raise_exception=True)
        query = dict(filters.validated_data)
        if "rule" in query:
            query["rule_id"] = query.pop("rule")
        return selectors.execution_list(**query)


class CooldownViewSet(viewsets.ViewSet):
    """Active cooldowns (staff): `GET /api/cooldowns/?rule=<id>`, `POST /api/cooldowns/clear/`.

    A key limited to some entry points lists and clears only their rules' cooldowns.
    """

    parser_classes = [SafeJSONParser]
    # For the role check only (view_cooldown to list, add_cooldown to clear); rows are not
    # served from it.
    queryset = Cooldown.objects.none()

    @extend_schema(
        parameters=[s.CooldownFilterSerializer],
        responses={200: s.CooldownSerializer(many=True), **error_responses(400)},
    )
    def list(self, request: Request) -> Response:
        """Every active cooldown (or one rule's), with the milliseconds left."""
        query = s.CooldownFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rule = query.validated_data.get("rule")
        key = request_key(request)
        return Response(
            selectors.cooldowns_active(
                rule_id=str(rule) if rule else None,
                entry_points=key.entry_points if key is not None else None,
            )
        )

    @extend_schema(
        request=s.CooldownFilterSerializer,
        responses={200: s.CooldownClearResponseSerializer, **error_responses(400)},
    )
    @action(detail=False, methods=["post"])
    def clear(self, request: Request) -> Response:
        """End the cooldowns of `{"rule": id, "subject"?: s}`; returns how many ended."""
        body = s.CooldownFilterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if "rule" not in body.validated_data:
            raise ValidationError({"rule": ["This field is required."]})
        entry_point = selectors.rule_entry_point_key(rule_id=body.validated_data["rule"])
        if entry_point is not None:
            require_entry_point(request, entry_point)
        cleared = services.cooldown_clear(
            rule_id=str(body.validated_data["rule"]),
            subject=body.validated_data.get("subject"),
        )
        return Response({"cleared": cleared})


@extend_schema_view(list=extend_schema(parameters=[s.RuleChangeFilterSerializer]))
class RuleChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Drafts of rule changes on critical entry points, with approve, reject, withdraw and dry run.

    Filters: `?status=draft|applied|rejected|withdrawn`, `?entry_point=<key>`, `?rule=<uuid>`.
    Approving and rejecting need the publisher role (`approve_rulechange`) and another person
    than the draft's author; withdrawing needs the author. The service checks both.
    """

    serializer_class = s.RuleChangeSerializer
    parser_classes = [SafeJSONParser]
    key_entry_point_field = "entry_point__key"

    def get_queryset(self) -> QuerySet[RuleChange]:
        if self.action != "list":
            return selectors.rule_change_list()
        filters = s.RuleChangeFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        query = dict(filters.validated_data)
        if "rule" in query:
            query["rule_id"] = query.pop("rule")
        return selectors.rule_change_list(**query)

    @extend_schema(
        request=s.RuleChangeReviewSerializer,
        responses={200: s.RuleChangeSerializer, **error_responses(400, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"], serializer_class=s.RuleChangeReviewSerializer)
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve the draft and apply it (200 with the applied change).

        403 for its author or without the publisher role, 409 when the rule changed since the
        draft was made (stale), 400 when it is no longer a draft or no longer compiles.
        """
        body = s.RuleChangeReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = self.get_object()
        try:
            change = services.rule_change_approve(
                change=change,
                user=request.user,
                review_note=body.validated_data.get("review_note", ""),
            )
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.StaleDraft as exc:
            return Response(
                {"error": exc.code, "details": exc.details}, status=status.HTTP_409_CONFLICT
            )
        return Response(s.RuleChangeSerializer(change).data)

    @extend_schema(
        request=s.RuleChangeReviewSerializer,
        responses={200: s.RuleChangeSerializer, **error_responses(400, 403, 404)},
    )
    @action(detail=True, methods=["post"], serializer_class=s.RuleChangeReviewSerializer)
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Reject the draft (200); 403 for its author or without the publisher role."""
        body = s.RuleChangeReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            change = services.rule_change_reject(
                change=self.get_object(),
                user=request.user,
                review_note=body.validated_data.get("review_note", ""),
            )
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(s.RuleChangeSerializer(change).data)

    @extend_schema(
        request=s.RuleChangeReviewSerializer,
        responses={200: s.RuleChangeSerializer, **error_responses(400, 403, 404)},
    )
    @action(detail=True, methods=["post"], serializer_class=s.RuleChangeReviewSerializer)
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        """Withdraw the draft (200); 403 for anyone but its author, 400 when not a draft.

        `review_note` says why; the author is recorded as `reviewer`.
        """
        body = s.RuleChangeReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            change = services.rule_change_withdraw(
                change=self.get_object(),
                user=request.user,
                note=body.validated_data.get("review_note", ""),
            )
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(s.RuleChangeSerializer(change).data)

    @extend_schema(
        request=s.RuleChangeDryRunSerializer,
        responses={200: s.RuleChangeDryRunResponseSerializer, **error_responses(400, 404)},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="dry-run",
        serializer_class=s.RuleChangeDryRunSerializer,
    )
    def dry_run(self, request: Request, pk: str | None = None) -> Response:
        """Decide `{"context": {...}}` with the live rules and with the draft; writes nothing."""
        body = s.RuleChangeDryRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.rule_change_dry_run(
            change=self.get_object(), context=body.validated_data["context"]
        )
        return Response(
            {
                "entry_point": result.entry_point,
                "stale": result.stale,
                "live": _dry_run_decision(result.live),
                "draft": _dry_run_decision(result.draft),
            }
        )


def _dry_run_decision(decision: engine.Decision) -> dict[str, Any]:
    return {
        "outcome": decision.outcome,
        "matched_rules": decision.matched_rules,
        "rule_results": decision.rule_results,
        "effects": decision.effects,
        "action_results": decision.action_results,
        "blocking": decision.blocking,
    }
