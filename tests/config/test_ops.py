"""Operations endpoints: /healthz, /readyz, the request id header, the state gauges of
/metrics, and the shipped dashboard and alert rules against /metrics after a workload."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config import ops
from config.celery import app
from egress import services as egress_services
from egress.models import Delivery
from ingress import services as ingress_services
from ingress import streams
from ingress.models import Event
from rules_engine import services
from rules_engine.functions import registry as functions
from rules_engine.models import Execution, Rule
from scheduling import services as scheduling_services
from scheduling.models import ScheduledAction
from tests.support.webhooks import Receiver

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "verdict-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
EXECUTE = "/api/rules/engine/execute/"


@pytest.fixture(autouse=True)
def _fresh_state_gauges(settings: Any) -> None:
    """State gauges are read afresh on every scrape in these tests (no shared-cache copy)."""
    settings.VERDICT = {**settings.VERDICT, "METRICS_STATE_SECONDS": 0}


def scrape(client: Any) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """GET /metrics, parsed: family name -> [(sample name, labels, value)]."""
    response = client.get("/metrics")
    assert response.status_code == 200
    families: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            families.setdefault(sample.name, []).append(
                (sample.name, dict(sample.labels), sample.value)
            )
    return families


def gauge(families: dict[str, Any], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(labels.items())): value for _, labels, value in families.get(name, [])}


# --- health ----------------------------------------------------------------------------------


def test_healthz_answers_without_touching_anything(client):
    # (without the db fixture, any database access would raise)
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_readyz_is_ready_when_everything_answers(client, monkeypatch):
    monkeypatch.setattr(ops, "_migrations_applied", False)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok", "broker": "ok"},
    }


@pytest.mark.django_db
def test_readyz_is_503_naming_an_unapplied_migration(client, monkeypatch):
    # given a migration on disk the database has not recorded as applied
    monkeypatch.setattr(ops, "_migrations_applied", False)
    latest = MigrationRecorder.Migration.objects.filter(app="scheduling").latest("id")
    latest.delete()
    # when readiness is asked
    response = client.get("/readyz")
    # then it is 503 and names the migrations check only
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["failed"]) == ("unavailable", ["migrations"])
    assert body["checks"]["migrations"] == "error: MigrationsPending"
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_naming_unreachable_redis_and_broker(client, settings, monkeypatch):
    # given Redis and the broker on a port where nothing listens
    nowhere = "redis://127.0.0.1:9/0"
    settings.REDIS_URL = nowhere
    monkeypatch.setitem(app.conf, "broker_url", nowhere)
    monkeypatch.setitem(app.conf, "broker_write_url", nowhere)  # resolved once by Celery 5.6
    monkeypatch.setattr(ops, "_migrations_applied", True)
    # when readiness is asked
    response = client.get("/readyz")
    # then it is 503 naming both, with the error's class only (no URL, no message)
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis", "broker"]
    assert body["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "redis": "error: ConnectionError",
        "broker": "error: OperationalError",
    }


# --- request id ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_id_sent_is_returned_and_audited(api_client, demo, demo_context):
    # when a decision is asked with an X-Request-ID
    body = {"entry_point": "checkout", "context": demo_context}
    response = api_client.post(EXECUTE, body, format="json", HTTP_X_REQUEST_ID="checkout-42")
    # then the response carries the same id, and so does the audit row
    assert response.status_code == 200
    assert response["X-Request-ID"] == "checkout-42"
    execution = Execution.objects.get(pk=response.json()["execution_id"])
    assert execution.request_id == "checkout-42"


@pytest.mark.django_db
def test_a_request_without_a_usable_id_gets_a_new_one(api_client, demo, demo_context):
    # when one request sends no id and another an id with spaces and a newline
    body = {"entry_point": "checkout", "context": demo_context}
    plain = api_client.post(EXECUTE, body, format="json")
    hostile = api_client.post(EXECUTE, body, format="json", HTTP_X_REQUEST_ID="a b\nFAKE LOG")
    # then each gets a fresh 32-hex id, used for its audit row too
    for response in (plain, hostile):
        request_id = response["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        execution = Execution.objects.get(pk=response.json()["execution_id"])
        assert execution.request_id == request_id
    assert plain["X-Request-ID"] != hostile["X-Request-ID"]


def test_every_response_carries_a_request_id(client):
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/healthz")["X-Request-ID"])


# --- state gauges ----------------------------------------------------------------------------


@pytest.fixture
def ingress_stream(settings: Any) -> Iterator[str]:
    """A fresh ingress stream and dead-letter stream name, deleted after the test."""
    stream = f"test:ops:{uuid.uuid4().hex}"
    settings.VERDICT = {
        **settings.VERDICT,
        "INGRESS_STREAM": stream,
        "INGRESS_DEAD_LETTER_STREAM": f"{stream}:dead",
    }
    yield stream
    redis.Redis.from_url(settings.REDIS_URL).delete(stream, f"{stream}:dead")


@pytest.mark.django_db
def test_state_gauges_count_rows_by_status_and_overdue_actions(client, demo, ingress_stream):
    # given events, deliveries and delayed actions in known states
    for index, status in enumerate(["received", "waiting", "waiting", "failed"]):
        Event.objects.create(type="checkout", key=f"e{index}", status=status, payload={})
    destination = egress_services.destination_create(
        data={"name": "crm", "url": "https://crm.example/hook"}
    )
    for index, status in enumerate(["dead", "dead", "delivered"]):
        Delivery.objects.create(
            idempotency_key=f"d{index}", destination=destination, payload={}, status=status
        )
    now = timezone.now()
    for due, status in [
        (now - timedelta(seconds=60), "pending"),  # overdue
        (now - timedelta(seconds=30), "enqueued"),  # overdue
        (now - timedelta(seconds=1), "pending"),  # within the 5 s grace
        (now + timedelta(seconds=60), "pending"),  # not due
        (now - timedelta(seconds=60), "done"),  # finished
    ]:
        ScheduledAction.objects.create(
            entry_point_key="checkout",
            rule_id=uuid.uuid4(),
            rule_name="r",
            rule_version=1,
            action_index=0,
            spec={"type": "display_message", "params": {}},
            due_at=due,
            status=status,
        )
    # and an ingress stream with 3 entries, 1 read by the group and not acked, 1 dead letter
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    for n in range(3):
        client_redis.xadd(ingress_stream, {"data": json.dumps({"n": n})})
    client_redis.xgroup_create(ingress_stream, "verdict-ingress", id="0")
    client_redis.xreadgroup("verdict-ingress", "c1", {ingress_stream: ">"}, count=1)
    client_redis.xadd(f"{ingress_stream}:dead", {"data": "{}"})
    # when /metrics is scraped
    families = scrape(client)
    # then the gauges hold exactly those numbers
    assert gauge(families, "verdict_events") == {
        (("status", "cancelled"),): 0,
        (("status", "completed"),): 0,
        (("status", "failed"),): 1,
        (("status", "processing"),): 0,
        (("status", "received"),): 1,
        (("status", "waiting"),): 2,
    }
    deliveries = gauge(families, "verdict_deliveries")
    assert (deliveries[(("status", "dead"),)], deliveries[(("status", "delivered"),)]) == (2, 1)
    assert gauge(families, "verdict_scheduled_actions_overdue") == {(): 2}
    scheduled = gauge(families, "verdict_scheduled_actions")
    assert (scheduled[(("status", "pending"),)], scheduled[(("status", "done"),)]) == (3, 1)
    stream_labels = (("group", "verdict-ingress"), ("stream", ingress_stream))
    assert gauge(families, "verdict_stream_consumer_lag") == {stream_labels: 2}
    assert gauge(families, "verdict_stream_consumer_pending") == {stream_labels: 1}
    assert gauge(families, "verdict_stream_length") == {
        (("role", "ingress"), ("stream", ingress_stream)): 3,
        (("role", "dead_letter"), ("stream", f"{ingress_stream}:dead")): 1,
    }
    assert gauge(families, "verdict_state_up") == {
        (("source", "database"),): 1,
        (("source", "redis"),): 1,
    }


@pytest.mark.django_db
def test_state_gauges_are_cached_for_the_configured_seconds(client, settings, demo):
    # given state gauges cached for a minute, and one scrape done
    from django.core.cache import cache

    settings.VERDICT = {**settings.VERDICT, "METRICS_STATE_SECONDS": 60}
    cache.delete(ops.STATE_CACHE_KEY)
    try:
        scrape(client)
        # when an event arrives and /metrics is scraped again within the minute
        Event.objects.create(type="checkout", key="late", status="received", payload={})
        families = scrape(client)
        # then the gauge still shows the cached snapshot
        assert gauge(families, "verdict_events")[(("status", "received"),)] == 0
    finally:
        cache.delete(ops.STATE_CACHE_KEY)


# --- the dashboard and the alerts against a workload -----------------------------------------


def shipped_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and every alert rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = [
        (f"dashboard panel {panel['title']!r}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    alerts = yaml.safe_load(ALERTS.read_text())
    found += [
        (f"alert {rule['alert']}", rule["expr"])
        for group in alerts["groups"]
        for rule in group["rules"]
    ]
    return found


METRIC = re.compile(r"\b((?:verdict|django)_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


@pytest.fixture
def workload(
    db: Any, api_client: Any, demo: Any, demo_context: Any, ingress_stream: str, settings: Any
) -> Iterator[None]:
    """A scripted workload, in this process: an execute that matches, one that errors, one
    suppressed by a cooldown, an event accepted over HTTP and decided, a delayed action run
    late, a webhook delivered, an event waiting on the ingress stream."""
    settings.VERDICT = {**settings.VERDICT, "METRICS_RULE_TIMING_EVERY": 1}
    receiver = Receiver().start()

    def explode(*args: Any) -> Any:
        raise ValueError("boom")

    functions.register("explode", explode)
    try:
        # a decision that matches (and, through the dashboard's HTTP panels, a 200)
        body = {"entry_point": "checkout", "context": demo_context}
        assert api_client.post(EXECUTE, body, format="json").status_code == 200
        # a decision that errors: its only rule that could match fails
        failing = services.entry_point_create(data={"key": "fragile"})
        services.rule_create(
            data={"name": "explodes", "entry_point": failing, "condition": {"explode": [1]}}
        )
        body = {"entry_point": "fragile", "context": {}}
        response = api_client.post(EXECUTE, body, format="json")
        assert response.json()["outcome"] == "error"
        # a rule suppressed by its cooldown the second time
        limited = services.entry_point_create(data={"key": "limited"})
        services.rule_create(
            data={
                "name": "once a minute",
                "entry_point": limited,
                "condition": True,
                "cooldown_seconds": 60,
                "actions": [],
            }
        )
        for _ in range(2):
            api_client.post(EXECUTE, {"entry_point": "limited", "context": {}}, format="json")
        # an event waiting on the ingress stream, unread by its consumer group
        client_redis = redis.Redis.from_url(settings.REDIS_URL)
        streams.publish_event(client_redis, type="checkout", key="stream-1", payload=demo_context)
        client_redis.xgroup_create(ingress_stream, "verdict-ingress", id="0")
        # an event accepted over HTTP, then decided; its rule sends a webhook and a delayed
        # message
        egress_services.destination_create(
            data={"name": "crm", "url": receiver.url(), "timeout_seconds": 2}
        )
        banner = Rule.objects.get(name="Free shipping banner")
        services.rule_create(
            data={
                "name": "tell the crm",
                "entry_point": banner.entry_point,
                "condition": True,
                "actions": [
                    {"type": "webhook", "params": {"destination": "crm"}},
                    {**banner.actions[0], "delay_seconds": 60},
                ],
            }
        )
        event = {"type": "checkout", "key": "order-1", "payload": demo_context}
        response = api_client.post("/new-event", event, format="json")
        assert response.status_code == 202
        assert ingress_services.event_process(event_id=response.json()["id"]) is not None
        # the delayed action, run late
        row = ScheduledAction.objects.get()
        ScheduledAction.objects.filter(pk=row.pk).update(
            status="enqueued", due_at=timezone.now() - timedelta(seconds=2)
        )
        assert scheduling_services.scheduled_actions_run(ids=[str(row.pk)])
        # the webhook, delivered
        [delivery] = Delivery.objects.all()
        attempt = egress_services.delivery_attempt(delivery_id=str(delivery.pk))
        assert attempt is not None and attempt.ok
        yield
    finally:
        functions.unregister("explode")
        receiver.stop()


def test_every_metric_of_the_dashboard_and_alerts_exists_with_its_labels(client, workload):
    # given the metrics after the workload
    families = scrape(client)
    problems = []
    # then every metric an expression names is exported, with every label it selects or
    # groups by, and every exact label value it selects
    for where, expr in shipped_expressions():
        grouped = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")}
        for name, selector in METRIC.findall(expr):
            samples = families.get(name)
            if not samples:
                problems.append(f"{where}: {name} is not exported")
                continue
            labels = {label for _, sample_labels, _ in samples for label in sample_labels}
            for label in grouped - labels - {""}:
                if label != "le" or not name.endswith("_bucket"):
                    problems.append(f"{where}: {name} has no label {label!r}")
            for label, op, wanted in MATCHER.findall(selector or ""):
                values = {sample_labels.get(label) for _, sample_labels, _ in samples}
                if label not in labels:
                    problems.append(f"{where}: {name} has no label {label!r}")
                elif op == "=" and wanted not in values:
                    problems.append(f"{where}: {name} has no sample with {label}={wanted!r}")
                # (a regular expression may match nothing yet: a 5xx alert needs no 5xx)
    assert problems == [], "\n".join(problems)


def test_the_workload_is_counted_with_the_right_labels(client, workload):
    # given the metrics after the workload
    families = scrape(client)
    samples = {
        (name, tuple(sorted(labels.items())))
        for group in families.values()
        for name, labels, _ in group
    }
    # then the decisions, the rule error, the actions, the lateness and the deliveries are there
    expected = [
        ("verdict_decisions_total", {"entry_point": "checkout", "outcome": "matched"}),
        ("verdict_decisions_total", {"entry_point": "fragile", "outcome": "error"}),
        ("verdict_rule_errors_total", {"entry_point": "fragile", "kind": "rule"}),
        ("verdict_actions_total", {"type": "webhook", "outcome": "ok"}),
        ("verdict_actions_total", {"type": "display_message", "outcome": "scheduled"}),
        ("verdict_scheduled_action_lateness_seconds_count", {"entry_point": "checkout"}),
        ("verdict_ruleset_cache_total", {"result": "miss"}),
    ]
    missing = [
        (name, labels)
        for name, labels in expected
        if (name, tuple(sorted(labels.items()))) not in samples
    ]
    assert missing == []
    # and the failing rule has one error under its own id (a new rule: its series is new)
    errors = gauge(families, "verdict_rule_outcomes_total")
    [fragile_rule] = Rule.objects.filter(name="explodes")
    key = (("entry_point", "fragile"), ("outcome", "error"), ("rule", str(fragile_rule.pk)))
    assert errors[key] == 1
    # and the state gauges show the one delivery delivered and the one event completed
    assert gauge(families, "verdict_deliveries")[(("status", "delivered"),)] == 1
    assert gauge(families, "verdict_events")[(("status", "completed"),)] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/api/nope/", "/api/events/not-a-uuid/", "/api/rules/engine/nothing/"],
)
def test_an_unknown_api_route_is_a_json_404(client, path):
    response = client.get(path)
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    assert response.json() == {
        "error": "not_found",
        "detail": f"no API route or object at {path}",
    }


@pytest.mark.django_db
def test_an_unknown_page_outside_the_api_stays_an_html_404(client):
    response = client.get("/nope/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
