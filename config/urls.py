"""URL routes: admin, the rules API (browsable at /api/), Prometheus metrics."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("rules_engine.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("django_prometheus.urls")),
]
