"""URL routes: admin, the rules API (browsable at /api/), the React app at /app/, metrics and
health checks."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import frontend, ops
from ingress.urls import root_urlpatterns as ingress_root
from ingress.urls import router as ingress_router
from rules_engine.api.views import ExecuteView

urlpatterns = [
    # First: the busiest route is matched before any other pattern is tried.
    path("api/rules/engine/execute/", ExecuteView.as_view(), name="engine-execute"),
    path("admin/", admin.site.urls),
    *ingress_root,
    path("api/", include(ingress_router.urls)),
    # Analytics (issue 7): /api/rules/<id>/analytics/, /api/entry-points/<key>/analytics/.
    path("api/", include("analytics.api_urls")),
    path("api/", include("rules_engine.api.urls")),
    path("api/", include("experiments.api.urls")),  # issue 7: A/B experiments and rollouts
    path("api-auth/", include("rest_framework.urls")),
    # Analytics dashboards (staff), linked from the rule and entry point admin pages.
    path("analytics/", include("analytics.urls")),
    # The OpenAPI schema of the whole API, and an interactive page over it.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Operations: liveness, readiness, Prometheus metrics (django-prometheus's and ours).
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="prometheus-django-metrics"),
    # The React app (frontend/dist): hashed assets, then index.html for every other path.
    path("app/assets/<path:path>", frontend.asset, name="frontend-asset"),
    re_path(r"^app/(?P<path>.*)$", frontend.app, name="frontend"),
]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404: under /api/ in the API's error shape (JSON), elsewhere Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": "not_found", "detail": f"no API route or object at {request.path}"},
            status=404,
        )
    return defaults.page_not_found(request, exception)


handler404: Any = not_found
