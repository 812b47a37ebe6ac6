"""Routes of the analytics dashboards, mounted at /analytics/."""

from django.urls import path, re_path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.index, name="index"),
    re_path(
        r"^entry-points/(?P<key>[a-z0-9][a-z0-9_.\-]{0,99})/$",
        views.entry_point_dashboard,
        name="entry-point",
    ),
    path("rules/<uuid:pk>/", views.rule_dashboard, name="rule"),
]
