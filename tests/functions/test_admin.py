"""Admin of named lists and WASM functions: saves go through the services."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from rules_engine.functions import services
from rules_engine.functions.models import NamedList, WasmFunction
from rules_engine.functions.sandbox import module_from_source
from tests.functions.conftest import ECHO_WAT, IMPORT_WAT

pytestmark = pytest.mark.django_db


def url(name: str, *args: object) -> str:
    return reverse(f"admin:functions_{name}", args=args)


def wasm_form(**fields: object) -> dict[str, object]:
    return {
        "name": "echo",
        "description": "",
        "wat": "",
        "export": "call",
        "abi": "json",
        "active": "on",
        "fuel": 1000000,
        "max_memory_bytes": 1048576,
        "timeout_ms": 50,
        "change_note": "",
        **fields,
    }


def test_adding_a_named_list_normalises_its_items(admin_client: Client) -> None:
    response = admin_client.post(
        url("namedlist_add"),
        {
            "name": "office",
            "kind": "ip_ranges",
            "items": '["10.0.0.0/8", "::1"]',
            "description": "",
            "change_note": "Office",
        },
    )
    assert response.status_code == 302
    named = NamedList.objects.get(name="office")
    assert (named.items, named.version) == (["10.0.0.0/8", "::1/128"], 1)


def test_a_bad_item_is_a_form_error(admin_client: Client) -> None:
    response = admin_client.post(
        url("namedlist_add"),
        {
            "name": "office",
            "kind": "ip_ranges",
            "items": '["nope"]',
            "description": "",
            "change_note": "",
        },
    )
    assert response.status_code == 200
    assert "$.items[0]: not an IP network" in response.content.decode()
    assert not NamedList.objects.exists()


def test_uploading_a_wasm_binary_creates_the_function(admin_client: Client) -> None:
    binary = module_from_source(ECHO_WAT)
    upload = SimpleUploadedFile("echo.wasm", binary, content_type="application/wasm")
    response = admin_client.post(url("wasmfunction_add"), wasm_form(upload=upload))
    assert response.status_code == 302
    function = WasmFunction.objects.get(name="echo")
    assert (function.module_bytes, function.wat, function.version) == (binary, "", 1)


def test_a_module_with_an_import_is_refused_in_the_form(admin_client: Client) -> None:
    response = admin_client.post(url("wasmfunction_add"), wasm_form(wat=IMPORT_WAT))
    assert response.status_code == 200
    assert "module imports env.now; modules may not import anything" in response.content.decode()
    assert not WasmFunction.objects.exists()


def test_editing_wat_bumps_the_version_and_history_renders(admin_client: Client) -> None:
    function = services.wasm_function_create(data={"name": "echo", "wat": ECHO_WAT})
    response = admin_client.post(
        url("wasmfunction_change", function.pk), wasm_form(wat=ECHO_WAT + "\n", timeout_ms=20)
    )
    assert response.status_code == 302
    function.refresh_from_db()
    assert (function.version, function.timeout_ms) == (2, 20)
    assert admin_client.get(url("wasmfunction_history", function.pk)).status_code == 200
    assert admin_client.get(url("wasmfunction_changelist")).status_code == 200
