"""The visual condition builder in Chromium: opened from the rule's admin page, a condition
added on the schema's fields, saved through the API; the stored condition is exactly the JSON
the builder previewed. On a critical entry point the save is a draft for review."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from rules_engine import services
from rules_engine.models import Rule, RuleChange
from tests.e2e.conftest import LiveApp, Steps, log_in

pytestmark = pytest.mark.django_db(transaction=True)

SIGNUP_SCHEMA = {
    "type": "object",
    "properties": {
        "user": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "country": {"type": "string"},
            },
        },
        "plan": {"enum": ["free", "pro"]},
    },
}


@pytest.fixture
def signup_rule(live_app: LiveApp) -> Rule:
    """A rule on a non-critical entry point (saves apply at once): adults get a welcome."""
    entry_point = services.entry_point_create(
        data={"key": "signup", "description": "Sign-up form", "context_schema": SIGNUP_SCHEMA}
    )
    services.template_create(data={"key": "welcome", "format": "text", "body": "Welcome!"})
    return services.rule_create(
        data={
            "name": "Welcome adults",
            "entry_point": entry_point,
            "condition": {"and": [{">=": [{"var": "user.age"}, 18]}]},
            "actions": [{"type": "display_message", "params": {"template": "welcome"}}],
        }
    )


def preview_json(page: Any) -> Any:
    return json.loads(page.get_by_test_id("json-preview").inner_text())


def test_a_condition_built_visually_is_saved_exactly_as_previewed(
    live_app: LiveApp, browser_page: Any, steps: Steps, signup_rule: Rule
) -> None:
    page = browser_page
    # given an author on the rule's admin page, following its "Edit condition visually" link
    log_in(page, live_app, f"/admin/rules_engine/rule/{signup_rule.pk}/change/")
    page.get_by_role("link", name="Edit condition visually").click()
    builder_url = f"{live_app.url}/app/builder?rule={signup_rule.pk}"
    page.wait_for_url(lambda url: url == builder_url)
    # then the builder shows the rule's condition as a group holding one comparison
    expect(page.get_by_test_id("builder-page")).to_be_visible()
    expect(page.get_by_test_id("group")).to_have_count(1)
    expect(page.get_by_test_id("group")).to_have_attribute("data-kind", "all")
    expect(page.get_by_test_id("condition")).to_have_count(1)
    expect(page.get_by_test_id("json-preview")).to_contain_text("user.age")
    assert preview_json(page) == {"and": [{">=": [{"var": "user.age"}, 18]}]}
    steps.shot("loaded")

    # when a comparison "user.country == DE" is added to the group
    page.get_by_test_id("add-condition").first.click()
    added = page.get_by_test_id("condition").nth(1)
    added.get_by_test_id("field-select").select_option("user.country")
    added.get_by_test_id("operator-select").select_option("==")
    added.get_by_test_id("value-input").fill("DE")
    # then the preview is the JSONLogic of the tree
    expected = {
        "and": [
            {">=": [{"var": "user.age"}, 18]},
            {"==": [{"var": "user.country"}, "DE"]},
        ]
    }
    expect(page.get_by_test_id("json-preview")).to_contain_text('"DE"')
    assert preview_json(page) == expected
    steps.shot("condition-added", readme="builder")

    # when the author saves with a note
    page.get_by_test_id("change-note").fill("Only adults in Germany")
    page.get_by_test_id("save-button").click()
    # then the rule is saved at once (not critical) as version 2, exactly as previewed
    expect(page.get_by_test_id("save-status")).to_have_text("Saved: version 2")
    signup_rule.refresh_from_db()
    assert signup_rule.version == 2
    assert signup_rule.condition == expected == preview_json(page)
    assert signup_rule.history.first().history_change_reason == "Only adults in Germany"
    assert RuleChange.objects.count() == 0
    steps.shot("saved")


def test_on_a_critical_entry_point_the_builder_saves_a_draft_for_review(
    live_app: LiveApp, browser_page: Any, steps: Steps
) -> None:
    page = browser_page
    # given the checkout's free-shipping rule (checkout is critical: four-eyes)
    rule = Rule.objects.get(name="Free shipping banner")
    log_in(page, live_app, f"/app/builder?rule={rule.pk}")
    expect(page.get_by_test_id("builder-page")).to_be_visible()
    assert preview_json(page) == {">=": [{"var": "cart.total"}, 50]}
    # when the threshold is raised to 75 and saved
    page.get_by_test_id("condition").get_by_test_id("value-input").fill("75")
    expect(page.get_by_test_id("json-preview")).to_contain_text("75")
    assert preview_json(page) == {">=": [{"var": "cart.total"}, 75]}
    page.get_by_test_id("change-note").fill("Free shipping from 75")
    page.get_by_test_id("save-button").click()
    # then the server stored a draft with exactly that condition and left the rule as it was
    status = page.get_by_test_id("save-status")
    expect(status).to_contain_text("awaits approval")
    change = RuleChange.objects.get()
    expect(status).to_have_text(f"Draft #{change.pk} awaits approval")
    assert change.status == RuleChange.Status.DRAFT
    assert change.content is not None
    assert change.content["condition"] == {">=": [{"var": "cart.total"}, 75]}
    assert change.change_note == "Free shipping from 75"
    rule.refresh_from_db()
    assert (rule.version, rule.condition) == (1, {">=": [{"var": "cart.total"}, 50]})
    steps.shot("draft-saved")
