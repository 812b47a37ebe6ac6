"""The demo checkout in Chromium against the demo rules: messages, the age acknowledgement
blocking Pay until the server has it, the newsletter preference, the large-order modal and
placing the order."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from rules_engine.models import Acknowledgement, Preference
from tests.e2e.conftest import LiveApp, Steps

pytestmark = pytest.mark.django_db(transaction=True)

# The demo customer (frontend/src/checkout/cart.ts): subject "42" of the checkout entry point.
SUBJECT = "42"


def test_the_checkout_renders_the_effects_and_pay_waits_for_the_acknowledgement(
    live_app: LiveApp, browser_page: Any, steps: Steps
) -> None:
    page = browser_page
    # given the checkout with its starting cart: one book, 100 EUR, shipping to DE
    page.goto(f"{live_app.url}/app/")
    expect(page.get_by_test_id("checkout-page")).to_be_visible()
    expect(page.get_by_test_id("cart-item")).to_have_count(1)
    expect(page.get_by_test_id("cart-total")).to_have_text("100.00 EUR")
    # then the free-shipping banner and the loyalty message are shown, and Pay is open
    messages = page.get_by_test_id("effect-message")
    shipping = messages.filter(has_text="ship free")
    expect(shipping).to_have_attribute("data-level", "success")
    expect(shipping).to_contain_text("Good news, Ada")
    expect(messages.filter(has_text="Loyalty")).to_have_attribute("data-level", "info")
    expect(page.get_by_test_id("pay-button")).to_be_enabled()
    steps.shot("messages")

    # when a bottle of wine is added
    page.get_by_test_id("add-item-wine").click()
    # then the age confirmation appears and blocks Pay, saying why
    expect(page.get_by_test_id("cart-total")).to_have_text("120.50 EUR")
    acknowledgement = page.get_by_test_id("effect-acknowledge")
    expect(acknowledgement).to_be_visible()
    expect(acknowledgement).to_contain_text("Age confirmation")
    expect(acknowledgement).to_contain_text("legal drinking age in DE")
    expect(page.get_by_test_id("pay-button")).to_be_disabled()
    expect(page.get_by_test_id("pay-blocked-reason")).to_contain_text("Age confirmation")
    # and changing the country asks the server again (the terms name the new country)
    page.get_by_test_id("country-select").select_option("US")
    expect(acknowledgement).to_contain_text("legal drinking age in US")
    expect(page.get_by_test_id("pay-button")).to_be_disabled()
    steps.shot("acknowledgement-blocks-pay", readme="checkout")

    # when the customer accepts the terms
    page.get_by_test_id("acknowledge-accept").click()
    # then Pay opens once the server has recorded the acceptance
    expect(page.get_by_test_id("pay-button")).to_be_enabled()
    expect(page.get_by_test_id("pay-blocked-reason")).to_have_count(0)
    stored = Acknowledgement.objects.get(subject=SUBJECT)
    assert (stored.ack_key, stored.entry_point.key) == ("age-check-v1", "checkout")
    steps.shot("acknowledged")

    # when the returning customer (their checkouts are counted) answers the newsletter question
    preference = page.get_by_test_id("effect-preference")
    expect(preference).to_contain_text("newsletter at ada@example.com")
    page.get_by_test_id("preference-option-weekly").click()
    # then the server stored the answer
    expect(page.get_by_test_id("preference-saved")).to_be_visible()
    assert list(Preference.objects.values_list("subject", "preference_key", "value")) == [
        (SUBJECT, "newsletter", "weekly")
    ]
    steps.shot("preference-saved")

    # when the cart goes above the 1000 EUR review threshold (nine more books)
    for _ in range(9):
        page.get_by_test_id("add-item-book").click()
    expect(page.get_by_test_id("cart-total")).to_have_text("1020.50 EUR")
    # then the large-order dialog asks for confirmation
    modal = page.get_by_role("dialog")
    expect(modal).to_have_attribute("data-testid", "effect-modal")
    expect(modal).to_contain_text("Large order")
    expect(modal).to_contain_text("1020.50 EUR is above our review threshold")
    steps.shot("modal")
    page.get_by_test_id("modal-button-confirm").click()
    expect(page.get_by_test_id("effect-modal")).to_have_count(0)

    # when the customer pays
    page.get_by_test_id("pay-button").click()
    # then the order is placed
    expect(page.get_by_test_id("order-placed")).to_contain_text("1020.50 EUR")
    steps.shot("order-placed")
