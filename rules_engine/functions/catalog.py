"""The per-process catalog of named lists and WASM functions that rules bind to when compiled.

Entries are loaded from the database the first time a rule compiled in this process names
them, and kept until the shared ruleset generation stamp (`rules_engine.cache`) moves: every
service changing a list or a function calls `rules_engine.cache.invalidate()`, so the next
compilation, in any process, loads the new content. A compiled ruleset holds the matchers and
modules it was compiled with, so deciding never reads the database for them.

While `rules_engine.cache` builds a ruleset the generation is pinned for the thread, so both
compile passes of one build see the same catalog.
"""

from __future__ import annotations

import threading

from rules_engine.functions.lists import ListMatcher
from rules_engine.functions.sandbox import (
    Limits,
    WasmFunctionSpec,
    WasmModuleError,
    compile_module,
)


def _generation() -> str:
    from rules_engine import cache

    pinned = getattr(cache._pinned, "generation", None)
    return pinned or cache.current_generation()


class Catalog:
    """Named lists and active WASM functions by name, for one generation stamp at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._lists: dict[str, ListMatcher | None] = {}
        self._functions: dict[str, WasmFunctionSpec | None] = {}

    def _refresh(self) -> None:
        generation = _generation()
        if generation != self._generation:
            with self._lock:
                self._lists = {}
                self._functions = {}
                self._generation = generation

    def named_list(self, name: str) -> ListMatcher | None:
        """The matcher of the list called `name`, or None if there is none (one query)."""
        self._refresh()
        if name in self._lists:
            return self._lists[name]
        from rules_engine.functions import selectors

        row = selectors.named_list_get(name=name)
        matcher = ListMatcher(row.name, row.kind, row.items, row.version) if row else None
        self._lists[name] = matcher
        return matcher

    def wasm_function(self, name: str) -> WasmFunctionSpec | None:
        """The callable of the active WASM function `name`, or None (one query, one compile).

        A stored module that no longer compiles (it was checked at upload) counts as missing.
        """
        self._refresh()
        if name in self._functions:
            return self._functions[name]
        from rules_engine.functions import selectors

        row = selectors.wasm_function_get(name=name)
        spec: WasmFunctionSpec | None = None
        if row is not None and row.active:
            try:
                module = compile_module(row.module_bytes)
            except WasmModuleError:
                module = None
            if module is not None:
                spec = WasmFunctionSpec(
                    name=row.name,
                    version=row.version,
                    module=module,
                    export=row.export,
                    abi=row.abi,
                    limits=Limits(row.fuel, row.max_memory_bytes, row.timeout_ms),
                )
        self._functions[name] = spec
        return spec

    def clear(self) -> None:
        """Forget everything loaded (tests)."""
        with self._lock:
            self._lists = {}
            self._functions = {}
            self._generation = None

    def __repr__(self) -> str:
        return f"<Catalog {len(self._lists)} lists, {len(self._functions)} functions>"


catalog = Catalog()
