"""Services of named lists and WASM functions: validation, versions, history, references."""

from __future__ import annotations

import pytest

from rules_engine import services as rule_services
from rules_engine.errors import InvalidInput
from rules_engine.functions import services
from rules_engine.functions.models import NamedList, WasmFunction
from tests.functions.conftest import ADD_WAT, ECHO_WAT, IMPORT_WAT

pytestmark = pytest.mark.django_db


def test_named_list_create_normalises_items():
    named = services.named_list_create(
        data={"name": "office", "kind": "ip_ranges", "items": ["10.0.0.0/8", "10.0.0.0/8"]}
    )
    assert (named.version, named.items) == (1, ["10.0.0.0/8"])


def test_named_list_update_bumps_the_version_and_keeps_history():
    named = services.named_list_create(data={"name": "codes", "kind": "numbers", "items": [1]})
    services.named_list_update(named_list=named, data={"items": [1, 2]}, change_note="two")
    assert named.version == 2
    assert [(h.version, h.items) for h in named.history.order_by("history_id")] == [
        (1, [1]),
        (2, [1, 2]),
    ]


def test_named_list_rollback_stores_the_old_items_as_a_new_version():
    named = services.named_list_create(data={"name": "codes", "kind": "numbers", "items": [1]})
    services.named_list_update(named_list=named, data={"items": [2]})
    rolled = services.named_list_rollback(named_list=named, version=1)
    assert (rolled.version, rolled.items) == (3, [1])


def test_named_list_with_bad_items_is_refused_with_paths():
    with pytest.raises(InvalidInput) as caught:
        services.named_list_create(data={"name": "Bad Name", "kind": "strings", "items": [1]})
    assert caught.value.code == "invalid_named_list"
    assert [d["path"] for d in caught.value.details] == ["$.items[0]", "$.name"]
    assert not NamedList.objects.exists()


def test_a_list_used_by_an_active_rule_cannot_be_deleted():
    named = services.named_list_create(data={"name": "blocked", "kind": "strings", "items": []})
    rule_services.entry_point_create(data={"key": "pay"})
    rule_services.rule_create(
        data={
            "name": "Blocked",
            "entry_point": rule_services.selectors.entry_point_get(key="pay"),
            "condition": {"in_list": ["blocked", {"var": "email"}]},
        }
    )
    with pytest.raises(InvalidInput) as caught:
        services.named_list_delete(named_list=named)
    assert caught.value.details == [
        {"path": "$.name", "message": "list 'blocked' is used by active rules: 'Blocked'"}
    ]


def test_wasm_function_from_wat_is_stored_with_its_binary():
    function = services.wasm_function_create(data={"name": "echo", "wat": ECHO_WAT})
    assert function.module_bytes[:4] == b"\0asm"
    assert (function.version, function.export, function.abi, len(function.sha256)) == (
        1,
        "call",
        "json",
        64,
    )
    # and the limits default to the settings
    assert (function.fuel, function.max_memory_bytes, function.timeout_ms) == (
        5_000_000,
        16 * 1024 * 1024,
        50,
    )


def test_wasm_function_with_an_import_is_refused_at_upload():
    with pytest.raises(InvalidInput) as caught:
        services.wasm_function_create(data={"name": "clock", "wat": IMPORT_WAT})
    assert caught.value.details == [
        {"path": "$.module", "message": "module imports env.now; modules may not import anything"}
    ]
    assert not WasmFunction.objects.exists()


def test_wasm_function_with_invalid_wat_is_refused():
    with pytest.raises(InvalidInput) as caught:
        services.wasm_function_create(data={"name": "bad", "wat": "(module (func $x"})
    assert [d["path"] for d in caught.value.details] == ["$.wat"]


def test_wasm_function_update_bumps_the_version_and_history_keeps_modules():
    function = services.wasm_function_create(
        data={"name": "add", "wat": ADD_WAT, "export": "add", "abi": "numeric"}
    )
    first = function.module_bytes
    services.wasm_function_update(
        function=function, data={"wat": ECHO_WAT, "export": "call", "abi": "json"}
    )
    assert function.version == 2
    rolled = services.wasm_function_rollback(function=function, version=1)
    assert (rolled.version, rolled.module_bytes, rolled.abi) == (3, first, "numeric")
