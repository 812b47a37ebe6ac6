"""Fixtures of the custom-function tests: a fresh catalog and small WAT modules."""

from __future__ import annotations

from typing import Any

import pytest

from rules_engine.functions.catalog import catalog

# JSON ABI: hands out memory from a bump pointer and echoes its argument array back.
ECHO_WAT = """
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    global.get $next
    local.set $p
    global.get $next
    local.get $n
    i32.add
    global.set $next
    local.get $p)
  (func (export "call") (param $p i32) (param $n i32) (result i64)
    local.get $p
    i64.extend_i32_u
    i64.const 32
    i64.shl
    local.get $n
    i64.extend_i32_u
    i64.or))
"""


def json_module(body: str, memory: str = "1") -> str:
    """A JSON-ABI module whose `call` runs `body` (which must leave an i64 on the stack)."""
    return f"""
(module
  (memory (export "memory") {memory})
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "call") (param $p i32) (param $n i32) (result i64)
    (local $i i32)
    {body}))
"""


# Returns the JSON text `true` (stored at address 0 by a data segment).
TRUE_WAT = """
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "true")
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "call") (param i32 i32) (result i64) i64.const 4))
"""
LOOP_WAT = json_module("(loop $forever br $forever) i64.const 0")
TRAP_WAT = json_module("unreachable")
# Grows memory one page at a time for as long as it is allowed to, then traps.
GROW_WAT = json_module(
    "(loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable"
)
# Returns (as JSON) how many pages it could add before memory.grow failed (0 to 9).
GROW_COUNT_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "call") (param i32 i32) (result i64)
    (local $pages i32)
    (block $done
      (loop $more
        (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
        (br $more)))
    (i32.store8 (i32.const 0) (i32.add (i32.const 48) (local.get $pages)))
    i64.const 1))
"""
# Counts its calls in a global and returns the count: 1 on every call when stores are fresh.
COUNTER_WAT = """
(module
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "call") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.add (i32.const 48) (global.get $calls)))
    i64.const 1))
"""
IMPORT_WAT = """
(module
  (import "env" "now" (func $now (result i64)))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 0)
  (func (export "call") (param i32 i32) (result i64) call $now))
"""
ADD_WAT = """
(module
  (func (export "add") (param i64 i64) (result i64)
    local.get 0
    local.get 1
    i64.add))
"""


@pytest.fixture(autouse=True)
def _fresh_catalog() -> Any:
    """Each test starts with no named list or WASM function loaded in this process."""
    catalog.clear()
    yield
    catalog.clear()
