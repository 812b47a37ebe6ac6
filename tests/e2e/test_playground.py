"""The rule playground in Chromium: login required, a dry run of the checkout demo shows the
matched rules and, per rule, its outcome and why; a context off the schema shows the errors."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from playwright.sync_api import expect

from rules_engine.models import Execution, SubjectState
from tests.e2e.conftest import LiveApp, Steps, log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dry_run_shows_matched_rules_and_why_each_rule_did_or_did_not_match(
    live_app: LiveApp, browser_page: Any, steps: Steps, demo_context: dict[str, Any]
) -> None:
    page = browser_page
    # given an anonymous visitor: the playground asks them to log in
    page.goto(f"{live_app.url}/app/playground")
    expect(page.get_by_test_id("playground-page")).to_be_visible()
    login = page.get_by_test_id("login-link")
    expect(login).to_be_visible()
    expect(login).to_have_attribute("href", "/admin/login/?next=/app/playground")
    steps.shot("login-required")

    # when a staff author logs in and picks the checkout entry point
    log_in(page, live_app, "/app/playground")
    expect(page.get_by_test_id("login-link")).to_have_count(0)
    page.get_by_test_id("entry-point-select").select_option("checkout")
    # then its schema is shown as a guide
    expect(page.get_by_test_id("schema-view")).to_contain_text("cart")
    steps.shot("entry-point-picked")

    # when they dry-run the schema's example (wine and a book, 120.50 EUR, from DE)
    page.get_by_test_id("context-editor").fill(json.dumps(demo_context, indent=2))
    page.get_by_test_id("dry-run-button").click()
    result = page.get_by_test_id("dry-run-result")
    expect(result).to_be_visible()
    # then the three rules the context meets are listed as matched, in priority order
    matched = page.get_by_test_id("matched-rule")
    expect(matched).to_have_count(3)
    expect(matched.nth(0)).to_contain_text("Free shipping banner")
    expect(matched.nth(1)).to_contain_text("Age-restricted items need confirmation")
    expect(matched.nth(2)).to_contain_text("Count checkouts and show loyalty")
    # and every rule has its outcome, with an explanation tree of its condition
    results = page.get_by_test_id("rule-result")
    expect(results).to_have_count(5)
    outcomes = {
        "Free shipping banner": "matched",
        "Age-restricted items need confirmation": "matched",
        "Large order confirmation": "not_matched",
        "Newsletter opt-in for returning customers": "not_matched",
        "Count checkouts and show loyalty": "matched",
    }
    for name, outcome in outcomes.items():
        rule = results.filter(has_text=name)
        expect(rule).to_have_count(1)
        expect(rule).to_have_attribute("data-outcome", outcome)
    large_order = results.filter(has_text="Large order confirmation")
    explanation = large_order.get_by_test_id("rule-explanation")
    expect(explanation).to_be_visible()
    # the tree shows the comparison and the value it saw (120.5 is not above 1000)
    expect(explanation).to_contain_text("cart.total")
    expect(explanation).to_contain_text("120.5")
    expect(explanation).to_contain_text("1000")
    shipping = results.filter(has_text="Free shipping banner")
    expect(shipping.get_by_test_id("rule-explanation")).to_contain_text("cart.total")
    steps.shot("dry-run-result", readme="playground")
    # and the dry run changed nothing: no checkout was counted for the customer
    assert SubjectState.objects.count() == 0
    assert Execution.objects.count() == 0

    # when the context breaks the schema (a total that is not a number)
    broken = copy.deepcopy(demo_context)
    broken["cart"]["total"] = "lots"
    page.get_by_test_id("context-editor").fill(json.dumps(broken, indent=2))
    page.get_by_test_id("dry-run-button").click()
    # then the server's validation errors are shown with their path
    error = page.get_by_test_id("dry-run-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("cart.total")
    steps.shot("dry-run-error")
