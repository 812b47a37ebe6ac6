"""API of experiments: CRUD plus start, stop, promote and results. Writes call the services."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from access.authentication import request_key
from access.permissions import require_written_entry_point
from experiments import selectors, services
from experiments.api import serializers as s
from experiments.models import Experiment
from rules_engine.api.parsers import SafeJSONParser
from rules_engine.api.schema import error_responses
from rules_engine.api.serializers import RuleChangeSerializer, RuleSerializer
from rules_engine.models import Rule

KEY_REGEX = r"[a-z0-9][a-z0-9_.\-]{0,99}"


@extend_schema_view(
    list=extend_schema(parameters=[s.ExperimentFilterSerializer]),
    create=extend_schema(responses={201: s.ExperimentSerializer, **error_responses(400)}),
    update=extend_schema(responses={200: s.ExperimentSerializer, **error_responses(400, 404)}),
    partial_update=extend_schema(
        responses={200: s.ExperimentSerializer, **error_responses(400, 404)}
    ),
    destroy=extend_schema(responses={204: None, **error_responses(400, 404)}),
)
class ExperimentViewSet(viewsets.ModelViewSet):
    """A/B experiments and percentage rollouts on rules (staff and `manage` keys).

    Filters: `?entry_point=<key>`, `?status=draft|running|stopped`. Only drafts change their
    split; `start` and `stop` take effect from the next decision; `promote` writes a variant
    to the live rule (a four-eyes draft on a critical entry point) and stops the experiment.
    """

    serializer_class = s.ExperimentSerializer
    lookup_field = "key"
    lookup_value_regex = KEY_REGEX
    parser_classes = [SafeJSONParser]
    key_entry_point_field = "entry_point__key"

    def get_queryset(self) -> QuerySet[Experiment]:
        if self.action != "list":
            return selectors.experiment_list()
        filters = s.ExperimentFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return selectors.experiment_list(**filters.validated_data)

    def _data(self, serializer: BaseSerializer) -> dict[str, Any]:
        data = dict(serializer.validated_data)
        if "variants" in data:
            data["variants"] = [dict(v) for v in data["variants"]]
        return data

    def _check_entry_points(self, serializer: BaseSerializer) -> None:
        # A key limited to other entry points may not name theirs, directly or by the rule.
        data = serializer.validated_data
        require_written_entry_point(self.request, data.get("entry_point"))
        if data.get("rule") is not None:
            require_written_entry_point(self.request, data["rule"].entry_point)

    def perform_create(self, serializer: BaseSerializer) -> None:
        self._check_entry_points(serializer)
        serializer.instance = services.experiment_create(
            data=self._data(serializer), user=self.request.user
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        self._check_entry_points(serializer)
        serializer.instance = services.experiment_update(
            experiment=self.get_object(), data=self._data(serializer), user=self.request.user
        )

    def perform_destroy(self, instance: Experiment) -> None:
        services.experiment_delete(experiment=instance, user=self.request.user)

    @extend_schema(
        request=None, responses={200: s.ExperimentSerializer, **error_responses(400, 404)}
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, key: str | None = None) -> Response:
        """Start the draft: its subjects get their variants from the next decision on."""
        experiment = services.experiment_start(experiment=self.get_object(), user=request.user)
        return Response(
            s.ExperimentSerializer(selectors.experiment_list().get(pk=experiment.pk)).data
        )

    @extend_schema(
        request=None, responses={200: s.ExperimentSerializer, **error_responses(400, 404)}
    )
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, key: str | None = None) -> Response:
        """Stop the experiment: the live rule decides for everyone from the next decision on."""
        experiment = services.experiment_stop(experiment=self.get_object(), user=request.user)
        return Response(
            s.ExperimentSerializer(selectors.experiment_list().get(pk=experiment.pk)).data
        )

    @extend_schema(
        request=s.PromoteRequestSerializer,
        responses={200: s.PromoteResponseSerializer, **error_responses(400, 403, 404)},
    )
    @action(detail=True, methods=["post"], serializer_class=s.PromoteRequestSerializer)
    def promote(self, request: Request, key: str | None = None) -> Response:
        """Write `{"variant": key}` to the live rule (or a draft for review) and stop."""
        body = s.PromoteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        experiment = self.get_object()
        # Promoting changes a rule: staff need the rule permission too (keys: `manage`).
        if request_key(request) is None and not request.user.has_perm("rules_engine.change_rule"):
            raise PermissionDenied("promoting a variant changes a rule: needs change_rule")
        result = services.experiment_promote(
            experiment=experiment, variant_key=body.validated_data["variant"], user=request.user
        )
        fresh = selectors.experiment_list().get(pk=experiment.pk)
        return Response(
            {
                "experiment": s.ExperimentSerializer(fresh).data,
                "rule": RuleSerializer(result).data if isinstance(result, Rule) else None,
                "rule_change": None
                if isinstance(result, Rule)
                else RuleChangeSerializer(result).data,
            }
        )

    @extend_schema(responses={200: s.ExperimentResultsSerializer, **error_responses(404)})
    @action(detail=True, methods=["get"])
    def results(self, request: Request, key: str | None = None) -> Response:
        """Exposures, matches, match rate and outcomes per variant, with the SRM check."""
        results = selectors.experiment_results(experiment=self.get_object())
        data = dataclasses.asdict(results)
        if math.isinf(data["srm"]["chi_square"]):
            data["srm"]["chi_square"] = None
        return Response(s.ExperimentResultsSerializer(data).data)
