"""The naive baseline's view and routes: Verdict's routes plus `POST /bench/baseline/execute/`.

What a straightforward DRF implementation of `execute` looks like:

DRF's stock JSON parser and renderer, the entry point's rules interpreted on every request by
json-logic-qubit (the reference interpreter; acceptable here because the bench loads only its
own rules), and one ORM insert (an Execution row, autocommit) per request. It does less than
Verdict's endpoint: no JSON Schema validation, no templates rendered, no masking, no metrics of
its own; so the ratio between the two understates Verdict's advantage.
"""

from __future__ import annotations

import threading
from typing import Any

import json_logic
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as verdict_urlpatterns
from rules_engine.models import EntryPoint, Execution, Rule

_lock = threading.Lock()
_rules: dict[str, tuple[int, list[tuple[str, str, int, Any]]]] = {}


def _rules_of(key: str) -> tuple[int, list[tuple[str, str, int, Any]]] | None:
    """The entry point's id and its active rules (id, name, version, condition), read once."""
    with _lock:
        if key not in _rules:
            entry_point = EntryPoint.objects.filter(key=key, active=True).first()
            if entry_point is None:
                return None
            rows = Rule.objects.filter(entry_point=entry_point, active=True).order_by(
                "priority", "name"
            )
            _rules[key] = (
                entry_point.pk,
                [(str(r.pk), r.name, r.version, r.condition) for r in rows],
            )
        return _rules[key]


class BaselineExecuteView(APIView):
    """POST /bench/baseline/execute/ with `{entry_point, context}`: the naive decision."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        """Interpret every rule, insert one audit row, answer with the matched rules."""
        data = request.data if isinstance(request.data, dict) else {}
        key = data.get("entry_point")
        context = data.get("context")
        loaded = _rules_of(str(key))
        if loaded is None or not isinstance(context, dict):
            return Response({"error": "bad request"}, status=400)
        entry_point_id, rules = loaded
        matched = []
        results = []
        for rule_id, name, version, condition in rules:
            try:
                hit = bool(json_logic.jsonLogic(condition, context))
            except Exception:  # noqa: BLE001  (a failing rule counts as an error, like Verdict)
                results.append({"id": rule_id, "outcome": "error"})
                continue
            results.append({"id": rule_id, "outcome": "matched" if hit else "not_matched"})
            if hit:
                matched.append({"id": rule_id, "name": name, "version": version})
        execution = Execution.objects.create(
            entry_point_id=entry_point_id,
            outcome="matched" if matched else "no_match",
            matched_rules=matched,
            rule_results=results,
            context_snapshot=context,
            caller="bench:baseline",
        )
        return Response(
            {"execution_id": str(execution.pk), "outcome": execution.outcome, "matched": matched}
        )


urlpatterns = [
    path("bench/baseline/execute/", BaselineExecuteView.as_view(), name="bench-baseline-execute"),
    *verdict_urlpatterns,
]
