"""The express lane: the busiest API calls through a shorter middleware chain.

Most requests the web processes serve are `POST /api/rules/engine/execute/` and
`POST /new-event` from applications: an API key, a JSON body, a JSON answer. Their hot paths
(`rules_engine/api/hot_path.py`, `ingress/hot_path.py`) already skip DRF's dispatch, and then
Django's full middleware chain was about half of the CPU of such a request (sessions, CSRF,
authentication and messages do nothing for a key-authenticated JSON call, but each still runs
per request). So `ExpressWSGIHandler`, the WSGI application, asks the endpoint's hot path
first whether it will answer the request (`admit`: the key, the body, the entry point; no
side effect); if so the request runs through `settings.EXPRESS_MIDDLEWARE` (an ordered subset
of MIDDLEWARE: request id, body size, CORS, metrics, security headers, host check, framing)
straight to the hot path's answer, and otherwise through Django's full chain and
URL routing exactly as before. Everything Django does around a request still happens the same
way: request signals (database connection upkeep), the exception-to-500 conversion, error
logging, the URL's name in the metrics. The response is the same, headers included
(tests/config/test_express.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import ResolverMatch, get_script_prefix, resolve, reverse
from django.utils.module_loading import import_string

from rules_engine.cache import one_generation

# URL name -> the hot path's `admit(view, request)`: a callable that answers, or None.
EXPRESS_ROUTES = {
    "engine-execute": "rules_engine.api.hot_path.admit",
    "new-event": "ingress.hot_path.admit",
}

Answer = Callable[[], HttpResponse]


@dataclass(frozen=True)
class _Lane:
    """One express route: its URL match (for the view's name in metrics), the view class its
    hot path reads scopes and default headers from, and the hot path's admission."""

    match: ResolverMatch
    view_class: Any
    initkwargs: dict[str, Any]
    admit: Callable[[Any, HttpRequest], Answer | None]

    def admitted(self, request: HttpRequest) -> Answer | None:
        """The hot path's answer for `request`, or None when it leaves the request to DRF."""
        view = self.view_class(**self.initkwargs)
        view.setup(request)
        return self.admit(view, request)


def _express_view(request: HttpRequest) -> HttpResponse:
    """The view at the end of the express chain: the answer admitted before the chain ran."""
    answer: Answer = request._express_answer  # type: ignore[attr-defined]
    return answer()


class ExpressHandler(BaseHandler):
    """Django's request handling with EXPRESS_MIDDLEWARE as the chain and the admitted answer
    as the only view (no URL resolving: the lane already knows its route)."""

    def __init__(self) -> None:
        super().__init__()
        self.load_middleware()

    def load_middleware(self, is_async: bool = False) -> None:
        """Build the chain as BaseHandler.load_middleware does for MIDDLEWARE (sync only)."""
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
        for path in reversed(settings.EXPRESS_MIDDLEWARE):
            instance = import_string(path)(handler)
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler

    def resolve_request(self, request: HttpRequest) -> Any:
        """The express view, with the route's match set as URL resolving would set it."""
        match: ResolverMatch = request._express_match  # type: ignore[attr-defined]
        request.resolver_match = match
        return _express_view, (), {}


class ExpressWSGIHandler(WSGIHandler):
    """The WSGI application: admitted API calls through the express chain, the rest as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.express = ExpressHandler()
        self._lanes: dict[str, _Lane] | None = None

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        """The response from the express chain when the route's hot path admits the request,
        else from Django's full chain."""
        lane = self.lanes().get(request.path_info) if request.method == "POST" else None
        if lane is None:
            return super().get_response(request)
        # One generation-stamp read for the admission (the key cache) and the answer.
        with one_generation():
            try:
                answer = lane.admitted(request)
            except Exception:  # noqa: BLE001  (the full chain answers it, errors included)
                answer = None
            if answer is None:
                return super().get_response(request)
            request._express_answer = answer  # type: ignore[attr-defined]
            request._express_match = lane.match  # type: ignore[attr-defined]
            return self.express.get_response(request)

    def lanes(self) -> dict[str, _Lane]:
        """path -> lane, resolved on first use (the URLconf is not loaded at import time)."""
        if self._lanes is None:
            lanes = {}
            for name, admit in EXPRESS_ROUTES.items():
                # path_info: reverse() puts the script prefix (set per request) in front.
                path = "/" + reverse(name).removeprefix(get_script_prefix())
                match = resolve(path)
                view = match.func
                lanes[path] = _Lane(
                    match=match,
                    view_class=view.view_class,  # type: ignore[attr-defined]
                    initkwargs=view.view_initkwargs,  # type: ignore[attr-defined]
                    admit=import_string(admit),
                )
            self._lanes = lanes
        return self._lanes
