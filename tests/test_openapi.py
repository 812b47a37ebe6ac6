"""The OpenAPI schema describes the whole API, and a schemathesis run against a live server
finds no 500, no undocumented status code and no response that breaks the schema."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.keys import key_header, new_key
from tests.support.processes import ManagedProcess, free_port, process_env

# Examples per operation and generation mode: about 35 operations x 2 modes x this many
# requests keeps the run well under a minute on a busy machine.
EXAMPLES = 5
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# A CSRF secret of our own: the session-authenticated staff calls send it as cookie and header.
CSRF_TOKEN = "h5schemathesisCSRFtoken000000000"

APIVIEW_OPERATIONS = {
    ("/api/rules/engine/execute/", "post"): {"200", "400", "404", "413"},
    ("/api/rules/engine/acknowledgements/", "post"): {"200", "201", "400", "404", "413"},
    ("/api/rules/engine/preferences/", "post"): {"200", "400", "404", "413"},
    ("/new-event", "post"): {"200", "202", "400", "404", "413"},
    ("/status/{event_id}", "get"): {"200", "404"},
    ("/api/events/", "post"): {"200", "202", "400", "404", "413"},
    ("/api/events/{id}/", "get"): {"200", "404"},
    ("/api/events/{id}/cancel/", "post"): {"200", "400", "404"},
    ("/api/events/cancel/", "post"): {"200", "202", "400"},
}


def _schema_document() -> dict[str, Any]:
    out: Any = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

    call_command("spectacular", "--format", "openapi-json", "--validate", stdout=Sink())
    document: dict[str, Any] = json.loads("".join(out))
    return document


def test_the_schema_validates_without_warnings() -> None:
    # when the schema is generated strictly (any warning is an error)
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    # then it succeeds (SchemaGenerationError otherwise)


def test_every_api_view_documents_its_bodies_and_error_answers() -> None:
    # given the generated schema
    paths = _schema_document()["paths"]
    # then every hand-written endpoint has its request and response bodies and its errors
    for (path, method), codes in APIVIEW_OPERATIONS.items():
        operation = paths[path][method]
        assert codes <= set(operation["responses"]), (path, method)
        for code in codes:
            content = operation["responses"][code]["content"]["application/json"]
            reference = content["schema"].get("$ref", "")
            if code.startswith("4"):
                assert reference == "#/components/schemas/Error", (path, method, code)
            else:
                assert reference, (path, method, code)
        if method == "post":
            assert "requestBody" in operation, (path, method)


def test_every_operation_documents_the_errors_of_the_request_pipeline() -> None:
    paths = _schema_document()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert {"401", "403", "405", "413", "429"} <= set(operation["responses"]), (
                path,
                method,
            )


def _answer(path: str, method: str, body: Any) -> httpx.Response:
    """A 200 answer carrying `body`, as schemathesis reads a response it validates."""
    response = httpx.Response(
        200, json=body, request=httpx.Request(method, f"http://testserver{path}")
    )
    response.elapsed = timedelta(0)
    return response


def test_decisions_of_every_effect_type_match_the_documented_shapes(
    api_client: Any, demo: Any, demo_context: dict[str, Any]
) -> None:
    # given the schema, and the demo checkout decided twice for a large cart (the second
    # time the returning customer is also asked the preference question)
    schema = schemathesis.openapi.from_dict(_schema_document())
    execute = schema["/api/rules/engine/execute/"]["POST"]
    audit = schema["/api/executions/{id}/"]["GET"]
    demo_context["cart"]["total"] = 1500
    body = json.dumps({"entry_point": "checkout", "context": demo_context})
    api_client.post("/api/rules/engine/execute/", body, content_type="application/json")
    # when the decision and its audit row are fetched
    decision = api_client.post(
        "/api/rules/engine/execute/", body, content_type="application/json"
    ).json()
    row = api_client.get(f"/api/executions/{decision['execution_id']}/").json()
    # then both hold an effect of every type the frontend renders, each as documented
    assert sorted(e["type"] for e in decision["effects"]) == [
        "display_message",
        "display_message",
        "display_modal",
        "user_acknowledge",
        "user_preference",
    ]
    assert row["effects"] == decision["effects"]
    execute.validate_response(_answer("/api/rules/engine/execute/", "POST", decision))
    audit.validate_response(_answer(f"/api/executions/{row['id']}/", "GET", row))
    # and an effect off its documented shape is caught
    broken = copy.deepcopy(decision)
    [message, *_] = [e for e in broken["effects"] if e["type"] == "display_message"]
    message["level"] = "loud"
    assert not execute.is_valid_response(_answer("/api/rules/engine/execute/", "POST", broken))
    broken["effects"] = [{**message, "level": "info", "type": "teleport"}]
    assert not execute.is_valid_response(_answer("/api/rules/engine/execute/", "POST", broken))


def test_the_schema_is_served(client: Any) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert json.loads(response.content)["info"]["title"] == "Verdict API"


@pytest.fixture
def live_api(transactional_db: Any, demo: Any, admin_user: Any) -> Iterator[tuple[str, Any]]:
    """A Django server process on a free port against the test database, and a session
    carrying an all-scope API key (and a staff login with its CSRF token)."""
    from django.test import Client

    port = free_port()
    web = ManagedProcess(
        "web-openapi",
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "Quit the server with",
        process_env(DJANGO_DEBUG="0"),
    ).start()
    staff = Client()
    staff.force_login(admin_user)
    session = requests.Session()
    session.cookies.set("sessionid", staff.cookies["sessionid"].value)
    session.cookies.set("csrftoken", CSRF_TOKEN)
    session.headers.update({"X-CSRFToken": CSRF_TOKEN, **key_header(new_key())})
    try:
        yield f"http://127.0.0.1:{port}", session
    finally:
        session.close()
        web.stop()
        print(web.log_tail(20))


def test_schemathesis_finds_no_500_and_no_schema_violation(live_api: tuple[str, Any]) -> None:
    base_url, session = live_api
    # given the schema the live server serves
    schema = schemathesis.openapi.from_url(
        f"{base_url}/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}
    )
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 34
    # when every operation gets valid and invalid generated requests
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                case.call_and_validate(base_url=base_url, session=session, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                # Nothing invalid to generate (e.g. a free-form string path parameter).
                continue
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    # then none of them got a 500, an undocumented status or a body off its schema
    assert failures == [], "\n\n".join(failures)
