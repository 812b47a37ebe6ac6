"""The WebAssembly sandbox: the JSON and numeric ABIs, and every limit holding."""

from __future__ import annotations

import time

import pytest

from rules_engine.functions.sandbox import (
    Limits,
    WasmCallError,
    WasmFunctionSpec,
    compile_module,
    inspect_module,
    module_from_source,
)
from rules_engine.jsonlogic import limits
from rules_engine.jsonlogic.errors import JsonLogicBudgetError
from tests.functions.conftest import (
    ADD_WAT,
    COUNTER_WAT,
    ECHO_WAT,
    GROW_COUNT_WAT,
    GROW_WAT,
    IMPORT_WAT,
    LOOP_WAT,
    TRAP_WAT,
)

LIMITS = Limits(fuel=1_000_000, max_memory_bytes=4 * 65536, timeout_ms=50)


def function(wat: str, limits: Limits = LIMITS, *, export: str = "call", abi: str = "json"):
    module = compile_module(module_from_source(wat))
    return WasmFunctionSpec("f", 1, module, export, abi, limits)


def test_json_abi_passes_the_arguments_and_returns_the_result():
    # given a module echoing its argument array
    echo = function(ECHO_WAT)
    # when called with JSON values
    result = echo(1, "é", {"a": [True, None]})
    # then the same values come back
    assert result == [1, "é", {"a": [True, None]}]


def test_numeric_abi_calls_with_numbers():
    add = function(ADD_WAT, export="add", abi="numeric")
    assert add(2, 40) == 42


def test_numeric_abi_refuses_a_fraction_for_an_integer():
    add = function(ADD_WAT, export="add", abi="numeric")
    with pytest.raises(WasmCallError, match=r"argument 1 must be an integer, got 0\.5"):
        add(2, 0.5)


def test_every_call_gets_a_fresh_store():
    # given a module counting its calls in a global
    counter = function(COUNTER_WAT)
    # when called twice, then each call sees a new instance
    assert (counter(), counter()) == (1, 1)


def test_a_module_is_compiled_once_per_process():
    binary = module_from_source(ECHO_WAT)
    assert compile_module(binary) is compile_module(bytes(binary))


def test_an_infinite_loop_is_stopped_by_the_wall_clock():
    # given plenty of fuel but 50 ms
    spin = function(LOOP_WAT, Limits(fuel=10**15, max_memory_bytes=65536, timeout_ms=50))
    started = time.perf_counter()
    # when called
    with pytest.raises(WasmCallError, match=r"timed out \(limit 50 ms\)"):
        spin(1)
    # then it was stopped shortly after its limit
    assert 0.045 <= time.perf_counter() - started < 0.5


def test_a_call_stopped_at_the_decisions_deadline_is_a_budget_error():
    # given a function allowed 10 s called inside a decision's budget of 50 ms
    spin = function(LOOP_WAT, Limits(fuel=10**15, max_memory_bytes=65536, timeout_ms=10_000))
    started = time.perf_counter()
    # when called, it is cut to what is left of the budget
    with limits.budget(0.05), pytest.raises(JsonLogicBudgetError, match="budget of 50 ms"):
        spin(1)
    # then the budget, not its own limit, is what stopped it, shortly after the deadline
    assert 0.045 <= time.perf_counter() - started < 0.5


def test_an_infinite_loop_is_stopped_by_fuel():
    spin = function(LOOP_WAT, Limits(fuel=100_000, max_memory_bytes=65536, timeout_ms=10_000))
    started = time.perf_counter()
    with pytest.raises(WasmCallError, match=r"out of fuel \(limit 100000\)"):
        spin(1)
    assert time.perf_counter() - started < 0.5


def test_memory_grows_only_up_to_the_limit():
    # given 4 pages allowed and 1 to start with, when the module grows as far as it can
    pages = function(GROW_COUNT_WAT)()
    # then it got exactly 3 more pages
    assert pages == 3


def test_unbounded_growth_ends_in_an_error():
    grow = function(GROW_WAT)
    with pytest.raises(WasmCallError, match="trapped: unreachable"):
        grow()


def test_a_trap_is_an_error():
    with pytest.raises(WasmCallError, match="WASM function 'f' v1 trapped: unreachable"):
        function(TRAP_WAT)()


def test_a_module_with_an_import_is_refused():
    problems = inspect_module(
        module_from_source(IMPORT_WAT), export="call", abi="json", limits=LIMITS
    )
    assert problems == ["module imports env.now; modules may not import anything"]


def test_a_json_module_must_export_alloc_and_memory():
    problems = inspect_module(module_from_source(ADD_WAT), export="add", abi="json", limits=LIMITS)
    assert problems == [
        "'add' must be (i32, i32) -> (i64), not (i64, i64) -> (i64)",
        "the json ABI needs an exported function 'alloc'",
        "the json ABI needs an exported memory 'memory'",
    ]


def test_a_memory_above_the_limit_is_refused():
    big = ECHO_WAT.replace('(memory (export "memory") 1)', '(memory (export "memory") 8)')
    problems = inspect_module(module_from_source(big), export="call", abi="json", limits=LIMITS)
    assert problems == ["memory 'memory' starts at 524288 bytes, above the limit of 262144"]
