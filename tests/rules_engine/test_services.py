"""Services: every write validates first, bumps versions, keeps history, writes nothing on error."""

from __future__ import annotations

from typing import Any

import pytest

from rules_engine import services
from rules_engine.errors import InvalidInput, NotFound
from rules_engine.models import EntryPoint, MessageTemplate, Rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry_point() -> EntryPoint:
    return services.entry_point_create(
        data={"key": "signup", "context_schema": {"type": "object"}, "subject_path": "user.id"}
    )


@pytest.fixture
def template() -> MessageTemplate:
    return services.template_create(data={"key": "hello", "format": "text", "body": "Hi"})


def rule_data(entry_point: EntryPoint, **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Greets adults",
        "entry_point": entry_point,
        "priority": 10,
        "condition": {">=": [{"var": "user.age"}, 18]},
        "actions": [{"type": "display_message", "params": {"template": "hello"}}],
    }
    data.update(overrides)
    return data


def test_rule_create_stores_version_one_with_history(entry_point, template):
    # when a valid rule is created
    rule = services.rule_create(data=rule_data(entry_point), change_note="first cut")
    # then it is version 1 with one history row carrying the note
    assert rule.version == 1
    records = list(rule.history.all())
    assert [(r.version, r.history_type, r.history_change_reason) for r in records] == [
        (1, "+", "first cut")
    ]


def test_rule_update_bumps_version_and_keeps_old_content(entry_point, template):
    # given a rule at version 1
    rule = services.rule_create(data=rule_data(entry_point))
    # when its condition changes twice
    services.rule_update(rule=rule, data={"condition": {">=": [{"var": "user.age"}, 21]}})
    services.rule_update(rule=rule, data={"priority": 5})
    # then it is version 3 and history holds all three versions
    rule.refresh_from_db()
    assert rule.version == 3
    assert rule.priority == 5
    assert [(r.version, r.condition) for r in rule.history.order_by("version")] == [
        (1, {">=": [{"var": "user.age"}, 18]}),
        (2, {">=": [{"var": "user.age"}, 21]}),
        (3, {">=": [{"var": "user.age"}, 21]}),
    ]


def test_rule_with_unknown_operator_is_refused_with_its_path(entry_point, template):
    # when a rule's condition uses an operator that does not exist
    bad = {"and": [{"==": [1, 1]}, {"bogus": [1]}]}
    with pytest.raises(InvalidInput) as caught:
        services.rule_create(data=rule_data(entry_point, condition=bad))
    # then the error names the node and nothing is stored
    assert caught.value.code == "invalid_rule"
    assert [d["path"] for d in caught.value.details] == ["$.condition.and[1]"]
    assert "bogus" in caught.value.details[0]["message"]
    assert Rule.objects.count() == 0


def test_operations_json_logic_runs_quietly_but_no_author_means_are_refused(entry_point, template):
    # when a condition compares three values, and a cooldown key mixes two operators
    bad = {"or": [{"==": [{"var": "a"}, 1, 2]}, {">": [{"var": "b"}, 3]}]}
    key = {"var": "user.id", "cat": ["x"]}
    with pytest.raises(InvalidInput) as caught:
        services.rule_create(data=rule_data(entry_point, condition=bad, cooldown_key=key))
    # then both are refused with their paths, and nothing is stored
    assert caught.value.code == "invalid_rule"
    assert caught.value.details == [
        {"path": "$.condition.or[0]", "message": "== takes 2 arguments, got 3"},
        {
            "path": "$.cooldown_key",
            "message": "an operation has exactly one operator; this object has 2 keys "
            "('var', 'cat')",
        },
    ]
    assert Rule.objects.count() == 0


@pytest.mark.parametrize(
    ("condition", "kind"), [("hello", "string"), ([1, 2], "array"), (1, "number")]
)
def test_a_literal_condition_is_refused(entry_point, template, condition, kind):
    with pytest.raises(InvalidInput) as caught:
        services.rule_create(data=rule_data(entry_point, condition=condition))
    assert caught.value.details == [
        {
            "path": "$.condition",
            "message": f"a condition is an operation, true or false, not a {kind} "
            "(the same answer for every context)",
        }
    ]
    assert Rule.objects.count() == 0


@pytest.mark.parametrize("condition", [True, False, {}, {"var": "flag"}])
def test_true_false_and_operations_are_conditions(entry_point, template, condition):
    rule = services.rule_create(data=rule_data(entry_point, condition=condition))
    assert rule.condition == condition


def test_every_problem_of_a_rule_is_reported_at_once(entry_point, template):
    # given a rule with a bad condition, a bad action param and a missing template
    actions = [
        {"type": "display_message", "params": {"template": "hello", "level": "loud"}},
        {"type": "display_message", "params": {"template": "missing"}},
        {"type": "launch_rocket", "params": {}},
    ]
    with pytest.raises(InvalidInput) as caught:
        services.rule_create(data=rule_data(entry_point, condition={"nope": 1}, actions=actions))
    # then every problem comes back, each with its JSON path
    assert [d["path"] for d in caught.value.details] == [
        "$.actions[0].params.level",
        "$.actions[1].params.template",
        "$.actions[2].type",
        "$.condition",
    ]
    assert Rule.objects.count() == 0


def test_missing_template_is_refused_naming_the_reference(entry_point):
    # when an action references a template that does not exist
    with pytest.raises(InvalidInput) as caught:
        services.rule_create(data=rule_data(entry_point))
    # then the template reference is named
    assert caught.value.details == [
        {"path": "$.actions[0].params.template", "message": "no message template 'hello'"}
    ]


def test_update_target_and_fields_must_be_allow_listed(entry_point, template):
    # when an update names a target that is not allow-listed, and another an invalid field
    actions = [
        {"type": "update", "params": {"target": "auth_user", "set": {"is_staff": True}}},
    ]
    with pytest.raises(InvalidInput) as caught:
        services.rule_create(data=rule_data(entry_point, actions=actions))
    assert [d["path"] for d in caught.value.details] == ["$.actions[0].params.target"]
    actions = [{"type": "update", "params": {"target": "subject_state", "set": {"__dict__": 1}}}]
    with pytest.raises(InvalidInput) as caught:
        services.rule_create(data=rule_data(entry_point, actions=actions))
    # then the offending field is named
    assert caught.value.details == [
        {
            "path": "$.actions[0].params.set.__dict__",
            "message": "field '__dict__' of 'subject_state' is not allow-listed",
        }
    ]


def test_rollback_stores_old_content_as_a_new_version(entry_point, template):
    # given a rule changed once
    rule = services.rule_create(data=rule_data(entry_point))
    services.rule_update(rule=rule, data={"condition": False, "name": "Disabled"})
    # when rolled back to version 1
    rolled = services.rule_rollback(rule=rule, version=1)
    # then version 3 has version 1's content and the history says why
    assert (rolled.version, rolled.name, rolled.condition) == (
        3,
        "Greets adults",
        {">=": [{"var": "user.age"}, 18]},
    )
    assert rule.history.order_by("-version").first().history_change_reason == (
        "Rolled back to version 1"
    )


def test_rollback_to_unknown_version_is_not_found(entry_point, template):
    rule = services.rule_create(data=rule_data(entry_point))
    with pytest.raises(NotFound) as caught:
        services.rule_rollback(rule=rule, version=7)
    assert caught.value.code == "unknown_version"


def test_entry_point_with_invalid_schema_is_refused(db):
    # when the context schema is not a valid JSON Schema
    with pytest.raises(InvalidInput) as caught:
        services.entry_point_create(
            data={"key": "orders", "context_schema": {"type": "objekt"}, "sensitive_paths": "x"}
        )
    # then both problems are reported and nothing is stored
    paths = [d["path"] for d in caught.value.details]
    assert paths == ["$.context_schema.type", "$.sensitive_paths"]
    assert EntryPoint.objects.count() == 0


def test_template_with_bad_syntax_is_refused(db):
    with pytest.raises(InvalidInput) as caught:
        services.template_create(data={"key": "t", "format": "html", "body": "{% if %}"})
    assert caught.value.code == "invalid_template"
    assert [d["path"] for d in caught.value.details] == ["$.body"]
    assert MessageTemplate.objects.count() == 0


def test_template_in_use_cannot_be_deleted(entry_point, template):
    # given a rule that uses the template
    services.rule_create(data=rule_data(entry_point))
    # when the template is deleted
    with pytest.raises(InvalidInput) as caught:
        services.template_delete(template=template)
    # then it is refused naming the rule
    assert caught.value.details == [{"path": "$", "message": "referenced by rules: Greets adults"}]
    assert MessageTemplate.objects.filter(key="hello").exists()


def test_template_update_bumps_version(template):
    updated = services.template_update(template=template, data={"body": "Hello {{ user.name }}"})
    assert (updated.version, updated.body) == (2, "Hello {{ user.name }}")
