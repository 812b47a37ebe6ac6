"""Routes of the rules API: the engine endpoints and the browsable CRUD under /api/."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from rules_engine.api import testcase_views, views

router = DefaultRouter()
router.register("entry-points", views.EntryPointViewSet, basename="entrypoint")
router.register("rules", views.RuleViewSet, basename="rule")
router.register("templates", views.MessageTemplateViewSet, basename="messagetemplate")
router.register("executions", views.ExecutionViewSet, basename="execution")
router.register("cooldowns", views.CooldownViewSet, basename="cooldown")
router.register("rule-changes", views.RuleChangeViewSet, basename="rulechange")

urlpatterns = [
    # rules/engine/execute/ is routed first of all, in config/urls.py.
    path(
        "rules/engine/acknowledgements/",
        views.AcknowledgementView.as_view(),
        name="engine-acknowledgements",
    ),
    path("rules/engine/preferences/", views.PreferenceView.as_view(), name="engine-preferences"),
    # Issue 7: rules' test cases (nested under rules, so listed before the router).
    *testcase_views.urlpatterns,
    path("", include(router.urls)),
]
