"""Request guards that must run before anything reads the body, and request metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_prometheus import middleware as prometheus
from django_prometheus.utils import Time, TimeSince

from config.logging import REQUEST_ID_HEADER, accept_request_id, bind_request_id, request_id_var
from rules_engine import metrics, tally


class BodySizeLimitMiddleware:
    """Answer 413 for a declared body larger than DATA_UPLOAD_MAX_MEMORY_SIZE, before any read.

    Later middleware (metrics) reads `request.body`; without this guard an oversized body would
    surface as Django's generic 400 page instead of a clear 413.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = request.META.get("CONTENT_LENGTH") or ""
        if limit is not None and declared.isdigit() and int(declared) > limit:
            return JsonResponse(
                {
                    "error": "request_too_large",
                    "detail": f"Request body is larger than {limit} bytes.",
                },
                status=413,
            )
        return self.get_response(request)


class RequestIdMiddleware:
    """Give each request an id: the caller's `X-Request-ID` if acceptable, else a new one.

    The id is bound to the request's context (logs, Celery tasks and deliveries it causes carry
    it, see config/logging.py), written back into the request's headers so views and the audit
    row see the same id, and returned as the response's `X-Request-ID`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accept_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request.META["HTTP_X_REQUEST_ID"] = request_id
        token = bind_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


# The methods django-prometheus labels as themselves (any other is "<invalid method>").
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH")
)
# (status, view, method, charset) -> the labelled children a response of that kind counts in.
_response_children: dict[tuple[Any, ...], tuple[Any, ...]] = {}
# (method, transport) -> the children a request counts in (method is one of _METHODS or
# "<invalid method>", so bounded).
_request_children: dict[tuple[str, str], tuple[Any, Any]] = {}
# (view, transport, method) -> the child a request routed to that view counts in; bounded by
# the URLconf's view names and the methods django-prometheus labels as themselves.
_view_children: dict[tuple[str, str, str], Any] = {}


class PrometheusBeforeMiddleware(prometheus.PrometheusBeforeMiddleware):
    """django-prometheus's request and response totals and latency including the middleware,
    counted through `rules_engine.tally`."""

    def process_request(self, request: Any) -> None:
        """Count the request; start its timer."""
        tally.inc(self.metrics.requests_total)
        request.prometheus_before_middleware_event = Time()

    def process_response(self, request: Any, response: Any) -> Any:
        """Count the response and the request's latency including the middleware."""
        metrics = self.metrics
        tally.inc(metrics.responses_total)
        started = getattr(request, "prometheus_before_middleware_event", None)
        if started is not None:
            tally.observe(metrics.requests_latency_before, TimeSince(started))
        else:
            tally.inc(metrics.requests_unknown_latency_before)
        return response


class PrometheusAfterMiddleware(prometheus.PrometheusAfterMiddleware):
    """django-prometheus's request metrics, with each labelled child made once per process,
    the request's headers read from META (`request.headers` parses every header), and the
    counts made through `rules_engine.tally`."""

    def process_request(self, request: Any) -> None:
        """Count the request by method and transport, and its body size; start its timer."""
        metrics = self.metrics
        meta = request.META
        labels = (self._method(request), self._transport(request))
        # For process_view: the transport asks the settings whether a proxy said https.
        request.prometheus_after_middleware_labels = labels
        children = _request_children.get(labels)
        if children is None:
            children = _request_children[labels] = (
                metrics.requests_by_method.labels(method=labels[0]),
                metrics.requests_by_transport.labels(transport=labels[1]),
            )
        tally.inc(children[0])
        tally.inc(children[1])
        if meta.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            tally.inc(metrics.requests_ajax)
        length = meta.get("CONTENT_LENGTH") or ""
        tally.observe(metrics.requests_body_bytes, int(length) if length.isdigit() else 0)
        request.prometheus_after_middleware_event = Time()

    def process_view(self, request: Any, view_func: Any, *args: Any, **kwargs: Any) -> None:
        """Count the request by view, transport and method, as django-prometheus does."""
        if not hasattr(request, "resolver_match"):
            return
        method, transport = getattr(request, "prometheus_after_middleware_labels", None) or (
            self._method(request),
            self._transport(request),
        )
        key = (request.resolver_match.view_name or "<unnamed view>", transport, method)
        found = _view_children.get(key)
        if found is None:
            found = _view_children[key] = self.metrics.requests_by_view_transport_method.labels(
                view=key[0], transport=transport, method=method
            )
        tally.inc(found)

    def process_response(self, request: Any, response: Any) -> Any:
        """Count the response by status, view, method and charset, its body size, and the
        request's latency by view and method: django-prometheus's series and values, with the
        labelled children of a (status, view, method, charset) found in one lookup."""
        metrics = self.metrics
        view = self._get_view_name(request)
        key = (response.status_code, view, request.method, str(response.charset))
        children = _response_children.get(key)
        if children is None:
            children = self._response_children(*key)
            # Only standard methods are remembered: the latency series takes the method as
            # sent, so remembering any other would let callers grow this dict without bound.
            if request.method in _METHODS:
                _response_children[key] = children
        by_status, by_status_view_method, by_charset, latency = children
        tally.inc(by_status)
        tally.inc(by_status_view_method)
        tally.inc(by_charset)
        if getattr(response, "streaming", False):
            tally.inc(metrics.responses_streaming)
        if hasattr(response, "content"):
            tally.observe(metrics.responses_body_bytes, len(response.content))
        started = getattr(request, "prometheus_after_middleware_event", None)
        if started is not None:
            tally.observe(latency, TimeSince(started))
        else:
            tally.inc(metrics.requests_unknown_latency)
        return response

    def _response_children(
        self, status: int, view: str, method: str, charset: str
    ) -> tuple[Any, ...]:
        metrics = self.metrics
        label = method if method in _METHODS else "<invalid method>"
        return (
            metrics.responses_by_status.labels(status=str(status)),
            metrics.responses_by_status_view_method.labels(
                status=str(status), view=view, method=label
            ),
            metrics.responses_by_charset.labels(charset=charset),
            metrics.requests_latency_by_view_method.labels(view=view, method=method),
        )

    def label_metric(self, metric: Any, request: Any, response: Any = None, **labels: Any) -> Any:
        """The child of `metric` for `labels`, memoised (eight lookups per request: each
        `metric.labels(...)` call validates, joins and locks)."""
        return metrics.child(metric, **labels) if labels else metric
