"""Structured logs: the JSON and plain formats, the format switch, and the request id that
follows a request into a real Celery worker and out with its webhook delivery."""

from __future__ import annotations

import importlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import config.settings
from config.logging import (
    JsonFormatter,
    PlainFormatter,
    RequestIdFilter,
    bind_request_id,
    request_id_var,
    task_var,
)
from egress import services as egress_services
from rules_engine import services
from tests.support import processes
from tests.support.processes import wait_for
from tests.support.webhooks import Receiver


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger writing through the project's filter and the JSON formatter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"tests.logging.{id(buffer)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer, handler
    logger.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_carries_the_request_id_and_masks_the_context(capture):
    logger, buffer, _ = capture
    # given a bound request id
    token = bind_request_id("req-7")
    try:
        # when a record carries a context with a sensitive path, a secret and a plain extra
        logger.info(
            "decided %s",
            "checkout",
            extra={
                "context": {"card": {"number": "4242"}, "total": 12},
                "sensitive_paths": ["card.number"],
                "api_key": "vk_live_secret",
                "entry_point": "checkout",
            },
        )
    finally:
        request_id_var.reset(token)
    # then one JSON object holds the message, the id, the masked context and no secret
    [entry] = lines(buffer)
    assert {k: v for k, v in entry.items() if k not in ("time", "process")} == {
        "level": "INFO",
        "logger": logger.name,
        "message": "decided checkout",
        "request_id": "req-7",
        "context": {"card": {"number": "***"}, "total": 12},
        "api_key": "***",
        "entry_point": "checkout",
    }
    assert entry["time"].endswith("+00:00")


def test_a_json_line_names_the_task_and_holds_the_exception(capture):
    logger, buffer, _ = capture
    # given a task context without a request id
    token = task_var.set(("task-1", "egress.tasks.deliver"))
    try:
        # when an exception is logged
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        task_var.reset(token)
    # then the line names the task, has no request id and holds the traceback
    [entry] = lines(buffer)
    assert (entry["request_id"], entry["task_id"], entry["task_name"]) == (
        None,
        "task-1",
        "egress.tasks.deliver",
    )
    assert entry["exception"].splitlines()[-1] == "ValueError: boom"


def test_the_plain_format_shows_the_request_id_when_there_is_one(capture):
    logger, buffer, handler = capture
    handler.setFormatter(PlainFormatter())
    token = bind_request_id("req-8")
    try:
        logger.warning("with")
    finally:
        request_id_var.reset(token)
    logger.warning("without")
    first, second = buffer.getvalue().splitlines()
    assert first.endswith(f"WARNING {logger.name} [req-8] with")
    assert second.endswith(f"WARNING {logger.name} without")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "plain"),
        ({"DJANGO_DEBUG": "false"}, "json"),
        ({"DJANGO_DEBUG": "false", "VERDICT_LOG_FORMAT": "plain"}, "plain"),
        ({"VERDICT_LOG_FORMAT": "json"}, "json"),
    ],
)
def test_the_log_format_follows_debug_and_the_switch(monkeypatch, env, expected):
    # given the environment (and nothing else that picks a format)
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    monkeypatch.delenv("VERDICT_LOG_FORMAT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        # when the settings module is read
        module = importlib.reload(config.settings)
        # then the console handler uses the expected formatter
        assert module.LOGGING["handlers"]["console"]["formatter"] == expected
    finally:
        monkeypatch.undo()
        importlib.reload(config.settings)


@pytest.mark.django_db(transaction=True)
def test_the_request_id_follows_a_request_into_its_task_and_delivery(celery_worker, api_client):
    # given a worker logging JSON (the session's worker stops so this one takes the task)
    celery_worker.stop()
    worker = processes.celery_worker(concurrency=1, VERDICT_LOG_FORMAT="json").start()
    receiver = Receiver().start()
    try:
        # and a rule that sends every order to a webhook
        egress_services.destination_create(
            data={"name": "crm", "url": receiver.url(), "timeout_seconds": 2}
        )
        orders = services.entry_point_create(data={"key": "orders"})
        services.rule_create(
            data={
                "name": "tell the crm",
                "entry_point": orders,
                "condition": True,
                "actions": [{"type": "webhook", "params": {"destination": "crm"}}],
            }
        )
        # when a decision is asked with a request id
        response = api_client.post(
            "/api/rules/engine/execute/",
            {"entry_point": "orders", "context": {"order": 1}},
            format="json",
            HTTP_X_REQUEST_ID="req-trace-1",
        )
        assert response.status_code == 200
        # then the worker's delivery reaches the receiver with the same id
        [request] = wait_for(lambda: receiver.requests)
        assert request.headers["x-request-id"] == "req-trace-1"

        # and the worker's JSON log line of that attempt carries it, with the task's name
        def delivered_line() -> dict[str, Any] | None:
            for line in worker.log_path.read_text().splitlines():
                if line.startswith("{") and "attempt 1: delivered" in line:
                    entry: dict[str, Any] = json.loads(line)
                    return entry
            return None

        entry = wait_for(delivered_line)
        assert entry["message"].endswith("attempt 1: delivered")
        assert (entry["request_id"], entry["task_name"], entry["ok"]) == (
            "req-trace-1",
            "egress.tasks.deliver",
            True,
        )
    finally:
        receiver.stop()
        worker.stop()
