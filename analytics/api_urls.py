"""Routes of the analytics API, mounted under /api/ next to the rules API."""

from django.urls import re_path

from analytics import api

urlpatterns = [
    re_path(
        r"^rules/(?P<pk>[0-9a-f-]{36})/analytics/$",
        api.RuleAnalyticsView.as_view(),
        name="rule-analytics",
    ),
    re_path(
        r"^entry-points/(?P<key>[a-z0-9][a-z0-9_.\-]{0,99})/analytics/$",
        api.EntryPointAnalyticsView.as_view(),
        name="entrypoint-analytics",
    ),
]
