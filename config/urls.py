"""URL routes: admin, the rules API (browsable at /api/), Prometheus metrics."""

from django.contrib import admin
from django.urls import include, path

from ingress.urls import root_urlpatterns as ingress_root
from ingress.urls import router as ingress_router

urlpatterns = [
    path("admin/", admin.site.urls),
    *ingress_root,
    path("api/", include(ingress_router.urls)),
    path("api/", include("rules_engine.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("django_prometheus.urls")),
]
