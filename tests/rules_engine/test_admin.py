"""Admin: pages render, writes go through the services, history diffs, revert, dry run."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from rules_engine import engine, services
from rules_engine.errors import InvalidInput
from rules_engine.models import (
    Acknowledgement,
    EntryPoint,
    Execution,
    MessageTemplate,
    Preference,
    Rule,
    SubjectState,
)
from tests.support.rules import BIG_CART, SAY_HI, rule_form

pytestmark = pytest.mark.django_db

HUGE_CART = {">": [{"var": "cart.total"}, 500]}
ADA = {"user": {"name": "Ada"}, "cart": {"total": 250}}


@pytest.fixture
def entry_point() -> EntryPoint:
    return services.entry_point_create(
        data={
            "key": "checkout",
            "context_schema": {
                "type": "object",
                "properties": {
                    "user": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "cart": {"type": "object", "properties": {"total": {"type": "number"}}},
                },
                "examples": [{"user": {"name": "Grace"}, "cart": {"total": 42}}],
            },
        }
    )


@pytest.fixture
def template() -> MessageTemplate:
    return services.template_create(
        data={"key": "hi", "format": "text", "body": "Hi {{ user.name }}"}
    )


@pytest.fixture
def rule(entry_point: EntryPoint, template: MessageTemplate) -> Rule:
    return services.rule_create(
        data={
            "name": "Big cart",
            "entry_point": entry_point,
            "condition": BIG_CART,
            "actions": SAY_HI,
        }
    )


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:rules_engine_{name}", args=args)


def form_errors(response: Any) -> dict[str, list[str]]:
    """The errors of the admin form on a re-rendered add/change page."""
    return {k: list(v) for k, v in response.context["adminform"].form.errors.items()}


def version_url(rule: Rule, version: int) -> str:
    record = rule.history.get(version=version)
    return url("rule_simple_history", rule.pk, record.history_id)


# --- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "entrypoint",
        "rule",
        "messagetemplate",
        "execution",
        "acknowledgement",
        "preference",
        "subjectstate",
    ],
)
def test_every_changelist_renders(admin_client: Client, rule: Rule, model: str) -> None:
    # given one rule and one audited decision
    engine.execute(entry_point="checkout", context=ADA)
    # when the list page of each registered model is opened
    response = admin_client.get(url(f"{model}_changelist"))
    # then it renders
    assert response.status_code == 200


def test_detail_pages_render(admin_client: Client, rule: Rule) -> None:
    # given a rule, an audited decision and the rows clients write
    decision = engine.execute(entry_point="checkout", context=ADA)
    execution = Execution.objects.get()
    ack = Acknowledgement.objects.create(
        ack_key="terms", subject="u1", entry_point=rule.entry_point
    )
    pref = Preference.objects.create(preference_key="news", subject="u1", value=True)
    state = SubjectState.objects.create(subject="u1", attributes={"tier": "gold"})
    pages = [
        url("entrypoint_change", rule.entry_point.pk),
        url("entrypoint_add"),
        url("rule_change", rule.pk),
        url("rule_add"),
        url("rule_history", rule.pk),
        url("messagetemplate_change", MessageTemplate.objects.get().pk),
        url("messagetemplate_add"),
        url("execution_change", execution.pk),
        url("acknowledgement_change", ack.pk),
        url("preference_change", pref.pk),
        url("subjectstate_change", state.pk),
    ]
    # when each is opened, then it renders
    assert {page: admin_client.get(page).status_code for page in pages} == {p: 200 for p in pages}
    assert decision.outcome == "matched"


def test_admin_site_header(admin_client: Client) -> None:
    # when the index is opened, then it carries the Verdict header
    response = admin_client.get(reverse("admin:index"))
    assert "Verdict administration" in response.content.decode()


def test_rule_form_shows_json_indented(admin_client: Client, rule: Rule) -> None:
    # when a rule's change page is opened
    html = admin_client.get(url("rule_change", rule.pk)).content.decode()
    # then its condition is shown indented, with a dry run link
    assert "{\n  &quot;&gt;&quot;: [\n    {\n      &quot;var&quot;: &quot;cart.total&quot;" in html
    assert f'href="{url("rule_dry_run", rule.pk)}"' in html


# --- saving through the services -----------------------------------------------------------


def test_adding_a_rule_creates_version_1_with_the_change_note(
    admin_client: Client, entry_point: EntryPoint, template: MessageTemplate
) -> None:
    # when a valid rule is added through the admin form with a change note
    response = admin_client.post(url("rule_add"), rule_form(entry_point, change_note="First draft"))
    # then it is stored as version 1, by the admin user, with a history row holding the note
    assert response.status_code == 302
    rule = Rule.objects.get()
    assert (rule.name, rule.version, rule.condition, rule.actions) == (
        "Big cart",
        1,
        BIG_CART,
        SAY_HI,
    )
    assert rule.created_by is not None and rule.created_by.get_username() == "admin"
    assert [(r.version, r.history_type, r.history_change_reason) for r in rule.history.all()] == [
        (1, "+", "First draft")
    ]


def test_editing_a_rule_bumps_its_version(admin_client: Client, rule: Rule) -> None:
    # when the rule's condition is changed through the admin form
    data = rule_form(rule.entry_point, condition=HUGE_CART, change_note="Only huge carts")
    response = admin_client.post(url("rule_change", rule.pk), data)
    # then it is version 2 and the history keeps version 1
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.version, rule.condition) == (2, HUGE_CART)
    assert [(r.version, r.history_change_reason) for r in rule.history.order_by("version")] == [
        (1, "Created"),
        (2, "Only huge carts"),
    ]


def test_saving_without_changes_keeps_the_version(admin_client: Client, rule: Rule) -> None:
    # when the change form is saved as it was loaded
    response = admin_client.post(url("rule_change", rule.pk), rule_form(rule.entry_point))
    # then no new version is written, and the page says so (and only that)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.version == 1
    assert rule.history.count() == 1
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "No field changed; version 1 was kept."
    ]


def test_an_empty_json_box_stores_the_model_default(
    admin_client: Client, entry_point: EntryPoint, template: MessageTemplate
) -> None:
    # when a rule is added with the metadata box left empty
    response = admin_client.post(url("rule_add"), rule_form(entry_point, metadata=""))
    # then its metadata is an empty object, not JSON null
    assert response.status_code == 302
    assert Rule.objects.get().metadata == {}


def test_unknown_operator_is_a_form_error_on_condition(
    admin_client: Client, entry_point: EntryPoint, template: MessageTemplate
) -> None:
    # when a rule whose condition uses an unknown operator is submitted
    response = admin_client.post(url("rule_add"), rule_form(entry_point, condition={"nope": [1]}))
    # then the form is shown again with the error, path included, on the condition field
    assert response.status_code == 200
    errors = form_errors(response)
    assert list(errors) == ["condition"]
    assert len(errors["condition"]) == 1
    assert errors["condition"][0].startswith("$.condition")
    assert "nope" in errors["condition"][0]
    # and nothing is written
    assert Rule.objects.count() == 0


def test_missing_template_is_a_form_error_on_actions(
    admin_client: Client, entry_point: EntryPoint, template: MessageTemplate
) -> None:
    # when a rule referencing a template that does not exist is submitted
    actions = [{"type": "display_message", "params": {"template": "nope"}}]
    response = admin_client.post(url("rule_add"), rule_form(entry_point, actions=actions))
    # then the error names the template's JSON path on the actions field
    assert form_errors(response) == {
        "actions": ["$.actions[0].params.template: no message template 'nope'"]
    }
    assert Rule.objects.count() == 0


def test_invalid_json_is_a_form_error(
    admin_client: Client, entry_point: EntryPoint, template: MessageTemplate
) -> None:
    # when the condition box holds text that is not JSON
    response = admin_client.post(url("rule_add"), rule_form(entry_point, condition='{"==": [1,'))
    # then the field says why, and the text is shown again as typed
    assert form_errors(response) == {
        "condition": ["Invalid JSON: Expecting value (line 1, column 11)."]
    }
    assert "{&quot;==&quot;: [1,</textarea>" in response.content.decode()
    assert Rule.objects.count() == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{">": [{"var": "x"}, NaN]}', "NaN is not a JSON value"),
        ('{">": [{"var": "x"}, -Infinity]}', "-Infinity is not a JSON value"),
        ('{">": [{"var": "x"}, 1e400]}', "1e400 is too large for a JSON number"),
    ],
)
def test_numbers_json_has_not_are_a_form_error_not_a_500(
    admin_client: Client, entry_point: EntryPoint, template: MessageTemplate, text: str, reason: str
) -> None:
    # when a condition holds a number Python's parser takes but JSON (and the database) not
    response = admin_client.post(url("rule_add"), rule_form(entry_point, condition=text))
    # then the field refuses it and nothing is stored
    assert form_errors(response) == {"condition": [f"Invalid JSON: {reason}."]}
    assert Rule.objects.count() == 0


def test_a_key_typed_twice_is_a_form_error(
    admin_client: Client, entry_point: EntryPoint, template: MessageTemplate
) -> None:
    # when a condition names "and" twice (Python's parser would keep only the second)
    text = '{"and": [{"var": "a"}], "and": [{"var": "b"}]}'
    response = admin_client.post(url("rule_add"), rule_form(entry_point, condition=text))
    # then the field refuses it with where, and nothing is stored
    assert form_errors(response) == {
        "condition": ["Invalid JSON: a key is named twice in one object, at $.and."]
    }
    assert Rule.objects.count() == 0


def test_add_pages_start_from_empty_json_not_null(admin_client: Client) -> None:
    # when the add pages are shown
    rule_page = admin_client.get(url("rule_add")).context["adminform"].form
    entry_page = admin_client.get(url("entrypoint_add")).context["adminform"].form
    # then each JSON box shows its empty value, and the optional cooldown key is blank
    shown = {
        name: form[name].value()
        for form, names in (
            (rule_page, ("condition", "actions", "metadata", "cooldown_key")),
            (entry_page, ("context_schema", "sensitive_paths")),
        )
        for name in names
    }
    assert shown == {
        "condition": "{}",
        "actions": "[]",
        "metadata": "{}",
        "cooldown_key": "",
        "context_schema": "{}",
        "sensitive_paths": "[]",
    }


def test_an_entry_point_with_a_null_schema_is_a_form_error_not_a_500(admin_client: Client) -> None:
    data = entry_point_form(context_schema="null", sensitive_paths="null")
    response = admin_client.post(url("entrypoint_add"), data)
    assert response.status_code == 200
    assert form_errors(response) == {
        "context_schema": ["$.context_schema: the schema must be an object"],
        "sensitive_paths": ["$.sensitive_paths: a list of dotted paths like 'card.number'"],
    }
    assert EntryPoint.objects.count() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/admin/rules_engine/rule/not-a-uuid/history/",
        "/admin/rules_engine/rule/cooldowns/?rule=not-a-uuid",
    ],
)
def test_a_malformed_rule_id_in_an_admin_url_is_a_404(admin_client: Client, path: str) -> None:
    assert admin_client.get(path).status_code == 404


def test_a_refusal_at_save_time_is_a_form_error_not_a_500(
    admin_client: Client,
    entry_point: EntryPoint,
    template: MessageTemplate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the template disappears between validation and save (the service refuses)
    def refuse(**kwargs: Any) -> Rule:
        raise InvalidInput(
            [{"path": "$.actions[0].params.template", "message": "no message template 'hi'"}],
            code="invalid_rule",
        )

    writes = services.VERSIONED_WRITES[Rule]
    monkeypatch.setitem(services.VERSIONED_WRITES, Rule, dataclasses.replace(writes, create=refuse))
    # when the rule is submitted
    response = admin_client.post(url("rule_add"), rule_form(entry_point))
    # then the form comes back with the service's error on the actions field
    assert response.status_code == 200
    assert form_errors(response) == {
        "actions": ["$.actions[0].params.template: no message template 'hi'"]
    }
    assert Rule.objects.count() == 0


def entry_point_form(**fields: str) -> dict[str, str]:
    """The entry point add form's fields (key signup), with `fields` changed."""
    return {
        "key": "signup",
        "description": "",
        "subject_path": "",
        "active": "on",
        "context_schema": "{}",
        "sensitive_paths": "[]",
        "change_note": "",
        **fields,
    }


def test_entry_point_with_invalid_schema_is_refused(admin_client: Client) -> None:
    # when an entry point whose schema has an invalid type is submitted
    data = entry_point_form(context_schema=json.dumps({"type": "nope"}))
    response = admin_client.post(url("entrypoint_add"), data)
    # then the schema field reports the path inside the schema
    errors = form_errors(response)
    assert list(errors) == ["context_schema"]
    assert errors["context_schema"][0].startswith("$.context_schema.type: ")
    assert EntryPoint.objects.count() == 0


def test_template_with_refused_tag_is_refused(admin_client: Client) -> None:
    # when a template using a refused tag is submitted
    data = {"key": "bad", "format": "text", "body": "{% load static %}", "description": ""}
    response = admin_client.post(url("messagetemplate_add"), {**data, "change_note": ""})
    # then the body field reports it and nothing is stored
    errors = form_errors(response)
    assert list(errors) == ["body"]
    assert errors["body"][0].startswith("$.body: ")
    assert MessageTemplate.objects.count() == 0


def test_deleting_a_template_in_use_is_refused(admin_client: Client, rule: Rule) -> None:
    # given the template "hi" used by a rule
    template = MessageTemplate.objects.get(key="hi")
    # when it is deleted through the admin
    response = admin_client.post(url("messagetemplate_delete", template.pk), {"post": "yes"})
    # then the service refuses, the page says why, and the template stays
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not deleted 'hi (text)': $: referenced by rules: Big cart"
    ]
    assert MessageTemplate.objects.filter(key="hi").exists()


def test_bulk_deleting_a_template_in_use_deletes_nothing(admin_client: Client, rule: Rule) -> None:
    # given an unused template next to the used template "hi"
    unused = services.template_create(data={"key": "bye", "format": "text", "body": "Bye"})
    used = MessageTemplate.objects.get(key="hi")
    # when both are deleted with the bulk action
    data = {"action": "delete_selected", "_selected_action": [unused.pk, used.pk], "post": "yes"}
    response = admin_client.post(url("messagetemplate_changelist"), data)
    # then the refusal is reported and neither is deleted
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Nothing was deleted 'hi (text)': $: referenced by rules: Big cart"
    ]
    assert sorted(MessageTemplate.objects.values_list("key", flat=True)) == ["bye", "hi"]


def test_deleting_a_rule_goes_through_the_service(admin_client: Client, rule: Rule) -> None:
    # when a rule is deleted through the admin
    response = admin_client.post(url("rule_delete", rule.pk), {"post": "yes"})
    # then it is gone and its history records the deletion by the admin
    assert response.status_code == 302
    assert Rule.objects.count() == 0
    last = Rule.history.filter(id=rule.pk).latest("history_id")
    assert (last.history_type, last.history_change_reason) == ("-", "Deleted")
    assert last.history_user.get_username() == "admin"


# --- history and revert --------------------------------------------------------------------


def test_history_page_shows_the_diff_between_versions(admin_client: Client, rule: Rule) -> None:
    # given version 2 changed priority and the condition's threshold
    services.rule_update(
        rule=rule, data={"priority": 5, "condition": HUGE_CART}, change_note="Tighter"
    )
    # when the history page is opened
    html = admin_client.get(url("rule_history", rule.pk)).content.decode()
    # then version 2 lists each changed field with old and new values
    assert '<strong class="diff-field">Priority</strong>:' in html
    assert '<del class="diff-old">100</del> &rarr; <ins class="diff-new">5</ins>' in html
    assert '<strong class="diff-field">Condition</strong>' in html
    assert '<span class="diff-del">-    100</span><span class="diff-add">+    500</span>' in html
    assert "Tighter" in html
    # and version 1 can be reverted to, the current version cannot
    assert 'value="Revert to v1"' in html
    assert 'value="Revert to v2"' not in html


def test_version_page_shows_content_and_changes(admin_client: Client, rule: Rule) -> None:
    # given version 2 with a new priority
    services.rule_update(rule=rule, data={"priority": 5})
    # when version 1's page is opened
    response = admin_client.get(version_url(rule, 1))
    # then it shows version 1's content and offers to revert to it
    html = response.content.decode()
    assert response.status_code == 200
    assert "Content of version 1" in html
    assert '<th scope="row">Priority</th>\n            <td>100</td>' in html
    assert '<th scope="row">Active</th>\n            <td>yes</td>' in html
    assert 'value="Revert to version 1"' in html


def test_revert_stores_the_old_version_as_a_new_one_and_decides_like_it(
    admin_client: Client, rule: Rule
) -> None:
    # given version 2 only matches carts above 500, so Ada's 250 cart no longer matches
    services.rule_update(rule=rule, data={"condition": HUGE_CART})
    assert engine.execute(entry_point="checkout", context=ADA).outcome == "no_match"
    # when version 1 is reverted to from the admin
    response = admin_client.post(version_url(rule, 1))
    # then version 3 holds version 1's condition, with a note in the history
    assert response.status_code == 302
    assert response["Location"] == url("rule_change", rule.pk)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Rolled back to version 1 as version 3."
    ]
    rule.refresh_from_db()
    assert (rule.version, rule.condition) == (3, BIG_CART)
    newest = rule.history.latest("history_id")
    assert (newest.version, newest.history_change_reason) == (3, "Rolled back to version 1")
    # and the next decision behaves like version 1
    decision = engine.execute(entry_point="checkout", context=ADA)
    assert decision.outcome == "matched"
    assert [(r["name"], r["version"]) for r in decision.matched_rules] == [("Big cart", 3)]
    assert [e["message"]["content"] for e in decision.effects] == ["Hi Ada"]


def test_reverting_the_current_version_is_refused(admin_client: Client, rule: Rule) -> None:
    # when the current (only) version is posted for revert
    response = admin_client.post(version_url(rule, 1))
    # then it is forbidden and nothing changes
    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.version == 1


def test_revert_of_a_template_goes_through_the_service(
    admin_client: Client, template: MessageTemplate
) -> None:
    # given version 2 of the template with another body
    services.template_update(template=template, data={"body": "Hello {{ user.name }}"})
    record = template.history.get(version=1)
    # when version 1 is reverted to
    response = admin_client.post(
        url("messagetemplate_simple_history", template.pk, record.history_id)
    )
    # then version 3 has version 1's body
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.version, template.body) == (3, "Hi {{ user.name }}")


# --- dry run -------------------------------------------------------------------------------


def test_dry_run_page_is_prefilled_with_the_schema_example(
    admin_client: Client, rule: Rule
) -> None:
    # when the dry run page is opened
    response = admin_client.get(url("rule_dry_run", rule.pk))
    # then the context box holds the entry point's first example
    assert response.status_code == 200
    assert json.loads(response.context["form"]["context"].value()) == {
        "user": {"name": "Grace"},
        "cart": {"total": 42},
    }


def test_dry_run_shows_the_decision_and_writes_nothing(admin_client: Client, rule: Rule) -> None:
    # when a matching context is dry run
    response = admin_client.post(url("rule_dry_run", rule.pk), {"context": json.dumps(ADA)})
    # then the decision is shown with the rendered message
    assert response.status_code == 200
    decision = response.context["decision"]
    assert (decision.outcome, decision.dry_run) == ("matched", True)
    assert [e["message"]["content"] for e in decision.effects] == ["Hi Ada"]
    html = response.content.decode()
    assert '<td id="dry-run-outcome">matched</td>' in html
    assert '<pre class="verdict-json verdict-message">Hi Ada</pre>' in html
    # and no audit row is written
    assert Execution.objects.count() == 0


def test_dry_run_shows_html_messages_as_escaped_source(
    admin_client: Client, entry_point: EntryPoint
) -> None:
    # given a rule whose message is an HTML template
    services.template_create(
        data={"key": "bold", "format": "html", "body": "<b>Hi {{ user.name }}</b>"}
    )
    rule = services.rule_create(
        data={
            "name": "Bold",
            "entry_point": entry_point,
            "condition": True,
            "actions": [{"type": "display_message", "params": {"template": "bold"}}],
        }
    )
    # when it is dry run
    response = admin_client.post(url("rule_dry_run", rule.pk), {"context": json.dumps(ADA)})
    # then the message is shown as text, never as markup
    html = response.content.decode()
    assert "&lt;b&gt;Hi Ada&lt;/b&gt;" in html
    assert "<b>Hi Ada</b>" not in html


def test_dry_run_lists_schema_errors_with_their_paths(admin_client: Client, rule: Rule) -> None:
    # when a context that breaks the schema is dry run
    context = {"user": {"name": "Ada"}, "cart": {"total": "lots"}}
    response = admin_client.post(url("rule_dry_run", rule.pk), {"context": json.dumps(context)})
    # then each schema error is listed with its path and no decision is shown
    assert response.context["errors"] == [
        {"path": "$.cart.total", "message": "'lots' is not of type 'number'"}
    ]
    assert response.context["decision"] is None
    assert (
        "<li><code>$.cart.total</code>: &#x27;lots&#x27; is not of type &#x27;number&#x27;</li>"
        in (response.content.decode())
    )
    assert Execution.objects.count() == 0


def test_dry_run_of_an_empty_box_uses_an_empty_context(admin_client: Client, rule: Rule) -> None:
    # when the context box is emptied and run
    response = admin_client.post(url("rule_dry_run", rule.pk), {"context": ""})
    # then the rule ran against {} and did not match
    assert response.context["errors"] == []
    assert response.context["decision"].outcome == "no_match"


def test_dry_run_with_invalid_json_is_a_form_error(admin_client: Client, rule: Rule) -> None:
    # when the context box holds text that is not JSON
    response = admin_client.post(url("rule_dry_run", rule.pk), {"context": "{user"})
    # then the form says why
    assert response.context["form"].errors == {
        "context": [
            "Invalid JSON: Expecting property name enclosed in double quotes (line 1, column 2)."
        ]
    }


# --- read-only audit -----------------------------------------------------------------------


def test_executions_are_read_only(admin_client: Client, rule: Rule) -> None:
    # given one audited decision
    engine.execute(entry_point="checkout", context=ADA)
    execution = Execution.objects.get()
    # when the add page is opened, then it is forbidden
    assert admin_client.get(url("execution_add")).status_code == 403
    # when the detail page is opened, then it shows the JSON without a save button
    html = admin_client.get(url("execution_change", execution.pk)).content.decode()
    assert 'name="_save"' not in html
    assert "&quot;content&quot;: &quot;Hi Ada&quot;" in html
    # when a change is posted, then it is forbidden and the row is unchanged
    response = admin_client.post(url("execution_change", execution.pk), {"outcome": "error"})
    assert response.status_code == 403
    execution.refresh_from_db()
    assert execution.outcome == "matched"
