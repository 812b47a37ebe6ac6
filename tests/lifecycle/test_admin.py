"""Backtest admin: the start form, the results page, cancelling."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from lifecycle import services
from lifecycle.models import Backtest
from rules_engine.models import EntryPoint, Rule
from tests.lifecycle.conftest import store_executions, window

pytestmark = pytest.mark.django_db


def test_the_start_form_queues_a_backtest(
    admin_client: Client, payments: EntryPoint, big_rule: Rule
) -> None:
    assert admin_client.get(reverse("admin:lifecycle_backtest_add")).status_code == 200
    window_from, window_to = window()

    response = admin_client.post(
        reverse("admin:lifecycle_backtest_add"),
        {
            "entry_point": payments.pk,
            "rule": big_rule.pk,
            "candidate": json.dumps({"condition": {">": [{"var": "total"}, 7500]}}),
            "source": "executions",
            "window_from": window_from.strftime("%Y-%m-%d %H:%M:%S"),
            "window_to": window_to.strftime("%Y-%m-%d %H:%M:%S"),
            "positive_labels": "fraud, chargeback",
            "sample_size": 5,
        },
    )

    backtest = Backtest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:lifecycle_backtest_change", args=[backtest.pk])
    assert (backtest.status, backtest.rule, backtest.positive_labels, backtest.sample_size) == (
        "queued",
        big_rule,
        ["FRAUD", "CHARGEBACK"],
        5,
    )


def test_the_start_form_shows_why_a_candidate_is_refused(
    admin_client: Client, payments: EntryPoint, big_rule: Rule
) -> None:
    response = admin_client.post(
        reverse("admin:lifecycle_backtest_add"),
        {
            "entry_point": payments.pk,
            "rule": big_rule.pk,
            "candidate": json.dumps({"condition": {"nope": []}}),
            "source": "executions",
            "window_from": "2025-01-01 00:00:00",
            "window_to": "2025-02-01 00:00:00",
            "positive_labels": "FRAUD",
            "sample_size": 5,
        },
    )

    assert response.status_code == 200
    assert [e["path"] for e in response.context["errors"]] == ["$.condition"]
    assert Backtest.objects.count() == 0


def test_a_finished_backtest_shows_its_result_tables(
    admin_client: Client, payments: EntryPoint, big_rule: Rule
) -> None:
    # given a finished backtest over 100 executions (totals 0..99; candidate total > 90)
    store_executions(payments, 100)
    window_from, window_to = window()
    backtest = services.backtest_start(
        entry_point=payments,
        rule=big_rule,
        candidate={"condition": {">": [{"var": "total"}, 90]}},
        window_from=window_from,
        window_to=window_to,
        enqueue=False,
    )
    services.backtest_run(backtest_id=backtest.pk)

    # when its page is opened
    page = admin_client.get(
        reverse("admin:lifecycle_backtest_change", args=[backtest.pk])
    ).content.decode()

    # then progress, the per-rule table and the examples are there, and no cancel button
    assert "<strong>Done</strong>:\n      100 of 100 contexts processed." in page
    assert "<tr><th>Newly matching</th><td>9</td></tr>" in page
    assert "<td>Big</td><td>0</td><td>9</td>" in page
    assert "First changed decisions" in page
    assert "cancel-backtest" not in page


def test_cancelling_from_the_admin(
    admin_client: Client, payments: EntryPoint, big_rule: Rule
) -> None:
    # given a queued backtest, whose page offers to cancel it
    window_from, window_to = window()
    backtest = services.backtest_start(
        entry_point=payments,
        rule=big_rule,
        candidate={},
        window_from=window_from,
        window_to=window_to,
        enqueue=False,
    )
    change = reverse("admin:lifecycle_backtest_change", args=[backtest.pk])
    assert "cancel-backtest" in admin_client.get(change).content.decode()

    # when it is cancelled
    response = admin_client.post(reverse("admin:lifecycle_backtest_cancel", args=[backtest.pk]))

    # then it is cancelled and never runs
    assert response.status_code == 302
    backtest.refresh_from_db()
    assert backtest.status == "cancelled"
    assert services.backtest_run(backtest_id=backtest.pk) is None


@pytest.mark.parametrize("model", ["label", "backtest", "backfillrun"])
def test_the_lists_open(admin_client: Client, model: str) -> None:
    assert admin_client.get(reverse(f"admin:lifecycle_{model}_changelist")).status_code == 200


@pytest.mark.parametrize(("role", "status"), [("author", 200), ("viewer", 403)])
def test_authors_start_backtests_and_viewers_do_not(
    client: Client, payments: EntryPoint, role: str, status: int
) -> None:
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("someone", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)

    assert client.get(reverse("admin:lifecycle_backtest_add")).status_code == status
    assert client.get(reverse("admin:lifecycle_backtest_changelist")).status_code == 200
