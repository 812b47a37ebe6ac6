"""Dashboard pages (staff): analytics per entry point and per rule, charts as inline SVG.

Thin: resolve the window from the query string, call a selector, build the charts. Staff
only (others are sent to the admin login); a staff user also needs the view permission of
the entry point or rule model (403 otherwise).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import SafeString

from analytics import charts, selectors
from analytics.api import AnalyticsQuerySerializer
from rules_engine.models import EntryPoint, Rule


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _window(request: HttpRequest) -> tuple[selectors.Window | None, dict[str, Any]]:
    """The window asked for, or None and the errors by parameter."""
    query = AnalyticsQuerySerializer(data=request.GET.dict())
    if query.is_valid():
        return query.validated_data["window"], {}
    return None, {name: " ".join(map(str, errors)) for name, errors in query.errors.items()}


def _label(window: selectors.Window, start: Any) -> str:
    return start.strftime("%Y-%m-%d" if window.bucket == "day" else "%m-%d %H:00")


def _percent(value: float | None) -> float | None:
    return None if value is None else value * 100


def _bucket_chart(
    title: str,
    labels: list[str],
    buckets: list[dict[str, Any]],
    columns: dict[str, str],
    unit: str = "",
) -> SafeString:
    """A line chart with one series per bucket column (`{series name: column}`)."""
    series = [charts.Series(name, [b[column] for b in buckets]) for name, column in columns.items()]
    return charts.line_chart(title=title, labels=labels, series=series, unit=unit)


def _latency_chart(title: str, labels: list[str], buckets: list[dict[str, Any]]) -> SafeString:
    return _bucket_chart(
        title, labels, buckets, {"p50": "latency_p50_ms", "p95": "latency_p95_ms"}, unit=" ms"
    )


def _page(
    request: HttpRequest, template: str, title: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    return render(
        request,
        template,
        # No app list beside the charts: the page needs the width.
        {**admin.site.each_context(request), "is_nav_sidebar_enabled": False, "title": title}
        | context,
        status=status,
    )


@staff_member_required
def index(request: HttpRequest) -> HttpResponse:
    """Every entry point, with a link to its dashboard."""
    _require(request, "rules_engine.view_entrypoint")
    entry_points = EntryPoint.objects.order_by("key")
    return _page(request, "analytics/index.html", "Analytics", {"entry_points": entry_points})


@staff_member_required
def entry_point_dashboard(request: HttpRequest, key: str) -> HttpResponse:
    """An entry point's decisions over time, latency, top rules and errors (400: bad window)."""
    _require(request, "rules_engine.view_entrypoint")
    entry_point = get_object_or_404(EntryPoint, key=key)
    title = f"Analytics of {entry_point.key}"
    window, errors = _window(request)
    if window is None:
        return _page(request, "analytics/entry_point.html", title, {"errors": errors}, 400)
    data = selectors.entry_point_analytics(entry_point=entry_point, window=window)
    labels = [_label(window, b["start"]) for b in data["buckets"]]
    buckets = data["buckets"]
    context = {
        "entry_point": entry_point,
        "data": data,
        "query": request.GET,
        "hit_rate_chart": charts.line_chart(
            title="Hit rate (matched decisions, %)",
            labels=labels,
            series=[charts.Series("hit rate", [_percent(b["match_rate"]) for b in buckets])],
            unit="%",
            y_max=100,
        ),
        "latency_chart": _latency_chart("Decision latency (ms)", labels, buckets),
        "errors_chart": _bucket_chart(
            "Errors",
            labels,
            buckets,
            {"decision errors": "errors", "action errors": "action_errors"},
        ),
        "top_rules_chart": charts.bar_chart(
            title="Top rules by matches",
            items=[(r["name"] or r["rule_id"], r["matches"]) for r in data["top_rules"]],
        ),
    }
    return _page(request, "analytics/entry_point.html", title, context)


@staff_member_required
def rule_dashboard(request: HttpRequest, pk: str) -> HttpResponse:
    """A rule's hit rate, latency, errors and suppressions over time, per variant (400: bad
    window)."""
    _require(request, "rules_engine.view_rule")
    rule = get_object_or_404(Rule.objects.select_related("entry_point"), pk=pk)
    title = f"Analytics of rule {rule.name}"
    window, errors = _window(request)
    if window is None:
        return _page(request, "analytics/rule.html", title, {"rule": rule, "errors": errors}, 400)
    data = selectors.rule_analytics(rule=rule, window=window)
    labels = [_label(window, b["start"]) for b in data["buckets"]]
    buckets = data["buckets"]
    hit_rates = [charts.Series("all", [_percent(b["match_rate"]) for b in buckets])]
    # One line per variant when an experiment split the rule's evaluations.
    if len(data["variants"]) > 1:
        for variant in data["variants"]:
            key = variant["variant"]
            values = [
                next(
                    (_percent(v["match_rate"]) for v in b["variants"] if v["variant"] == key),
                    None,
                )
                for b in buckets
            ]
            hit_rates.append(charts.Series(key or "(none)", values))
    context = {
        "rule": rule,
        "data": data,
        "query": request.GET,
        "hit_rate_chart": charts.line_chart(
            title="Hit rate (matches per evaluation, %)",
            labels=labels,
            series=hit_rates,
            unit="%",
            y_max=100,
        ),
        "latency_chart": _latency_chart(
            "Latency of the decisions that ran the rule (ms)", labels, buckets
        ),
        "errors_chart": _bucket_chart(
            "Errors and cooldown suppressions",
            labels,
            buckets,
            {"errors": "errors", "suppressions": "suppressions"},
        ),
    }
    return _page(request, "analytics/rule.html", title, context)
