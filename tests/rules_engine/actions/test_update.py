"""The `update` action: only allow-listed targets and fields, values from JSONLogic, audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from rules_engine import engine, services
from rules_engine.errors import InvalidInput
from rules_engine.models import EntryPoint, Execution

pytestmark = pytest.mark.django_db

HOST_TARGETS = {
    "account": {"model": "auth.User", "lookup": "username", "fields": ["first_name", "last_name"]}
}


@pytest.fixture
def entry_point(settings: Any) -> EntryPoint:
    settings.VERDICT_UPDATE_TARGETS = HOST_TARGETS
    return services.entry_point_create(
        data={"key": "profile", "context_schema": {"type": "object"}, "subject_path": "login"}
    )


def update_rule(entry_point: EntryPoint, values: dict[str, Any], target: str = "account") -> Any:
    return services.rule_create(
        data={
            "name": "Normalise names",
            "entry_point": entry_point,
            "condition": True,
            "actions": [{"type": "update", "params": {"target": target, "set": values}}],
        }
    )


def test_host_model_field_is_updated_with_before_and_after(entry_point):
    # given a host model allow-listed in settings and a user
    User.objects.create(username="ada", first_name="ada")
    update_rule(entry_point, {"first_name": {"cat": ["Ada", " (", {"var": "team"}, ")"]}})
    # when a decision runs for that user
    decision = engine.execute(entry_point="profile", context={"login": "ada", "team": "ops"})
    # then the field is written and the audit holds before and after
    assert User.objects.get(username="ada").first_name == "Ada (ops)"
    row = Execution.objects.get(pk=str(decision.execution_id))
    [result] = row.action_results
    assert result == {
        "rule_id": result["rule_id"],
        "rule_version": 1,
        "action_index": 0,
        "type": "update",
        "status": "ok",
        "target": "account",
        "subject": "ada",
        "before": {"first_name": "ada"},
        "after": {"first_name": "Ada (ops)"},
        "written": True,
    }


def test_field_not_on_the_allow_list_is_refused_at_save(entry_point):
    with pytest.raises(InvalidInput) as caught:
        update_rule(entry_point, {"is_superuser": True})
    assert caught.value.details == [
        {
            "path": "$.actions[0].params.set.is_superuser",
            "message": "field 'is_superuser' of 'account' is not allow-listed",
        }
    ]


def test_invalid_value_is_an_action_error_and_nothing_is_written(entry_point):
    # given a value longer than the model field allows
    User.objects.create(username="ada", first_name="ada")
    update_rule(entry_point, {"first_name": {"cat": ["x" * 200]}})
    # when decided
    decision = engine.execute(entry_point="profile", context={"login": "ada"})
    # then the action failed in the audit and the row is untouched
    [result] = decision.action_results
    assert result["status"] == "error"
    assert "first_name" in result["error"]
    assert User.objects.get(username="ada").first_name == "ada"


def test_missing_row_is_an_action_error(entry_point):
    update_rule(entry_point, {"last_name": "x"})
    decision = engine.execute(entry_point="profile", context={"login": "nobody"})
    [result] = decision.action_results
    assert (result["status"], result["error"]) == ("error", "no account with username='nobody'")


def test_dry_run_computes_without_writing(entry_point):
    User.objects.create(username="ada", last_name="L")
    update_rule(entry_point, {"last_name": "Lovelace"})
    decision = engine.execute(entry_point="profile", context={"login": "ada"}, dry_run=True)
    [result] = decision.action_results
    assert (result["before"], result["after"], result["written"]) == (
        {"last_name": "L"},
        {"last_name": "Lovelace"},
        False,
    )
    assert User.objects.get(username="ada").last_name == "L"
