"""Roles: the four groups the migration creates, and what each may do in the admin and API."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from rules_engine import services
from rules_engine.models import EntryPoint, Rule
from tests.support.keys import new_key

pytestmark = pytest.mark.django_db

migration = importlib.import_module("rules_engine.migrations.0004_roles")

VIEWER = {
    "rules_engine.view_acknowledgement",
    "rules_engine.view_entrypoint",
    "rules_engine.view_execution",
    "rules_engine.view_messagetemplate",
    "rules_engine.view_preference",
    "rules_engine.view_rule",
    "rules_engine.view_rulechange",
    "rules_engine.view_subjectstate",
    "ingress.view_event",
    "scheduling.view_scheduledaction",
    "egress.view_delivery",
    "egress.view_deliveryattempt",
    "rules_engine.view_cooldown",
    "functions.view_namedlist",
    "functions.view_wasmfunction",
}
AUTHOR_EXTRA = (
    {
        f"rules_engine.{action}_{model}"
        for model in ("rule", "messagetemplate", "entrypoint")
        for action in ("add", "change", "delete")
    }
    | {"rules_engine.add_rulechange"}
    | {f"functions.{action}_namedlist" for action in ("add", "change", "delete")}
)


@pytest.fixture(autouse=True)
def roles(db: Any) -> None:
    """The groups as the migration made them (a transactional test may have flushed them)."""
    migration.create_roles(django_apps, SimpleNamespace(connection=connection))


def perms_of(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def member(django_user_model: Any, username: str, role: str) -> Any:
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def entry_point() -> EntryPoint:
    return services.entry_point_create(data={"key": "newsletter"})


@pytest.fixture
def rule(entry_point: EntryPoint) -> Rule:
    return services.rule_create(data={"name": "Always", "entry_point": entry_point})


def test_the_viewer_group_reads_and_writes_nothing():
    assert perms_of("viewer") == VIEWER


def test_the_author_group_adds_writing_rules_templates_and_entry_points():
    assert perms_of("author") == VIEWER | AUTHOR_EXTRA


def test_the_publisher_group_adds_approving_rule_changes():
    assert perms_of("publisher") == VIEWER | AUTHOR_EXTRA | {
        "rules_engine.approve_rulechange",
        "rules_engine.add_cooldown",
    }


def test_the_administrator_group_holds_every_permission_including_api_keys():
    held = perms_of("administrator")
    assert len(held) == Permission.objects.count()
    assert {"access.add_apikey", "access.change_apikey", "auth.change_user"} <= held


def test_creating_the_roles_again_changes_nothing():
    before = {role: perms_of(role) for role in ("viewer", "author", "publisher", "administrator")}
    migration.create_roles(django_apps, SimpleNamespace(connection=connection))
    after = {role: perms_of(role) for role in before}
    assert (after, Group.objects.count()) == (before, 4)


def test_a_viewer_sees_rules_in_the_admin_but_cannot_change_them(django_user_model, rule):
    client = Client()
    client.force_login(member(django_user_model, "vic", "viewer"))
    assert client.get(reverse("admin:rules_engine_rule_changelist")).status_code == 200
    page = client.get(reverse("admin:rules_engine_rule_change", args=[rule.pk]))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    refused = client.post(
        reverse("admin:rules_engine_rule_delete", args=[rule.pk]), {"post": "yes"}
    )
    assert refused.status_code == 403
    assert client.get(reverse("admin:rules_engine_rule_add")).status_code == 403
    assert client.get(reverse("admin:rules_engine_rule_dry_run", args=[rule.pk])).status_code == 403
    assert Rule.objects.filter(pk=rule.pk).exists()


def test_a_viewer_cannot_see_api_keys_but_an_administrator_can(django_user_model):
    viewer, admin = Client(), Client()
    viewer.force_login(member(django_user_model, "vic", "viewer"))
    admin.force_login(member(django_user_model, "ada", "administrator"))
    url = reverse("admin:access_apikey_changelist")
    assert (viewer.get(url).status_code, admin.get(url).status_code) == (403, 200)


def test_an_author_edits_rules_in_the_admin(django_user_model, rule):
    client = Client()
    client.force_login(member(django_user_model, "alice", "author"))
    page = client.get(reverse("admin:rules_engine_rule_change", args=[rule.pk]))
    assert page.context["has_change_permission"]


def test_a_viewer_reads_the_api_but_cannot_write(django_user_model, rule):
    api = APIClient()
    api.force_login(member(django_user_model, "vic", "viewer"))
    assert api.get("/api/rules/").status_code == 200
    assert api.get("/api/executions/").status_code == 200
    patched = api.patch(
        f"/api/rules/{rule.pk}/", json.dumps({"priority": 1}), content_type="application/json"
    )
    assert patched.status_code == 403
    assert api.delete(f"/api/rules/{rule.pk}/").status_code == 403
    rule.refresh_from_db()
    assert (rule.version, rule.priority) == (1, 100)


def test_an_author_writes_rules_through_the_api(django_user_model, entry_point):
    api = APIClient()
    api.force_login(member(django_user_model, "alice", "author"))
    response = api.post(
        "/api/rules/",
        json.dumps({"name": "New", "entry_point": "newsletter"}),
        content_type="application/json",
    )
    assert (response.status_code, response.json()["created_by"]) == (201, "alice")


def test_an_author_cannot_change_a_critical_entry_point_but_a_publisher_can(django_user_model):
    # given a critical entry point (its rules' changes go through four-eyes)
    critical = services.entry_point_create(data={"key": "payments", "critical": True})
    author = member(django_user_model, "alice", "author")
    publisher = member(django_user_model, "pete", "publisher")
    # when the author switches its review off, in the admin and through the service
    client = Client()
    client.force_login(author)
    page = client.get(reverse("admin:rules_engine_entrypoint_change", args=[critical.pk]))
    posted = client.post(
        reverse("admin:rules_engine_entrypoint_change", args=[critical.pk]),
        {"key": "payments", "critical": "", "active": "on", "context_schema": "{}"},
    )
    with pytest.raises(PermissionDenied) as refused:
        services.entry_point_update(entry_point=critical, data={"critical": False}, user=author)
    # then the page is read-only, the post refused, and the entry point still critical
    assert not page.context["has_change_permission"]
    assert posted.status_code == 403
    assert str(refused.value) == (
        "changing the critical entry point 'payments' needs the publisher role (approve_rulechange)"
    )
    with pytest.raises(PermissionDenied):
        services.entry_point_delete(entry_point=critical, user=author)
    assert EntryPoint.objects.get(pk=critical.pk).critical is True
    # while a publisher may, and an author still changes a non-critical entry point
    changed = services.entry_point_update(
        entry_point=critical, data={"critical": False}, user=publisher
    )
    assert (changed.critical, changed.version) == (False, 2)
    relaxed = services.entry_point_update(
        entry_point=changed, data={"description": "cards"}, user=author
    )
    assert (relaxed.description, relaxed.version) == ("cards", 3)


def test_a_manage_key_cannot_change_a_critical_entry_point(django_user_model):
    services.entry_point_create(data={"key": "payments", "critical": True})
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {new_key(scopes=['manage'])}")
    response = api.patch(
        "/api/entry-points/payments/",
        json.dumps({"critical": False}),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert EntryPoint.objects.get(key="payments").critical is True


def test_migrate_gives_the_administrator_permissions_of_models_added_after_the_roles(
    django_user_model,
):
    # given the administrator role without the periodic tasks' permissions (their app is
    # migrated after the roles migration ran)
    administrator = Group.objects.get(name="administrator")
    later = Permission.objects.filter(content_type__app_label="django_celery_beat")
    administrator.permissions.remove(*later)
    assert later.count() > 0
    # when migrate runs (nothing to apply; post_migrate as after every migrate)
    call_command("migrate", verbosity=0)
    # then the role holds every permission, and an administrator edits periodic tasks
    assert len(perms_of("administrator")) == Permission.objects.count()
    client = Client()
    client.force_login(member(django_user_model, "ada", "administrator"))
    page = client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert page.status_code == 200
