"""The WebAssembly sandbox: compile, check and call user-supplied modules under hard limits.

Modules run in `wasmtime` with no imports at all (no WASI, no host functions: no file system,
network or clock); a module that imports anything is refused when it is uploaded. Every call
gets a fresh `Store` (nothing survives from one call to the next) with

* a fuel limit (`Config.consume_fuel`: roughly one unit per instruction),
* a memory limit (the store's limits cap every linear memory, one memory and one table),
* a wall-clock limit (`Config.epoch_interruption`: a ticker thread bumps the engine's epoch
  every `VERDICT["WASM_EPOCH_TICK_MS"]` while calls run; a call's deadline is its limit in
  ticks, plus one for the tick in progress).

A call that runs out of any of them, traps, or breaks the ABI raises :class:`WasmCallError`;
the JSONLogic compiler turns that into a JsonLogicRuntimeError, which the engine records as an
error of that rule only. Compiled modules are cached per process by the SHA-256 of their
bytes, so a module is compiled once per process, never per call.

Calling conventions (the `abi` of a function)
---------------------------------------------

``json`` (JSON in, JSON out). The module exports

* ``memory``: its linear memory;
* ``alloc(len: i32) -> i32``: returns the address of ``len`` writable bytes;
* the function (``export``, default ``call``): ``(ptr: i32, len: i32) -> i64``.

The host serialises the call's arguments as a UTF-8 JSON array (``{"wasm": ["score", 1,
"a"]}`` sends ``[1,"a"]``), calls ``alloc(len)``, writes the bytes at the address it returned,
then calls the function with ``(ptr, len)``. The function writes its result as UTF-8 JSON in
its memory and returns ``(result_ptr << 32) | result_len``; the host reads and parses it (at
most `VERDICT["WASM_MAX_RESULT_BYTES"]` bytes). The result may be any JSON value.

``numeric`` (numbers in, one number out). The function takes only ``i32``/``i64``/``f32``/
``f64`` parameters and returns exactly one of those; rules pass as many arguments as it has
parameters (checked when the rule is saved). Integer parameters accept integral numbers only.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import wasmtime
from django.conf import settings

__all__ = [
    "ABIS",
    "WasmCallError",
    "WasmFunctionSpec",
    "WasmModuleError",
    "compile_module",
    "inspect_module",
    "module_from_source",
]

ABIS: Final = ("json", "numeric")
PAGE_BYTES: Final = 65536
NUMERIC_TYPES: Final = frozenset({"i32", "i64", "f32", "f64"})
MAX_TABLE_ELEMENTS: Final = 10_000
MODULE_CACHE_SIZE: Final = 256


class WasmModuleError(ValueError):
    """A module cannot be used: it does not compile, imports something, or lacks an export."""


class WasmCallError(RuntimeError):
    """A call failed: out of fuel, over time, over memory, trapped or broke the ABI."""


def _setting(name: str) -> int:
    return int(settings.VERDICT[name])


# --- one engine per process, and its epoch ticker -------------------------------------------


class _Ticker:
    """Bumps the engine's epoch every tick while at least one call is running.

    Idle processes pay nothing: the thread sleeps on a condition until a call starts.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._active = 0
        self._thread: threading.Thread | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="wasm-epoch-ticker", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1

    def _run(self) -> None:
        tick = _setting("WASM_EPOCH_TICK_MS") / 1000
        started, ticks = time.monotonic(), 0
        while True:
            with self._cond:
                if self._active == 0:
                    while self._active == 0:
                        self._cond.wait()
                    # Idle time is not counted: a call's deadline starts from its own start.
                    started, ticks = time.monotonic(), 0
            time.sleep(tick)
            # A loaded machine oversleeps: catch up so epochs follow the wall clock.
            due = int((time.monotonic() - started) / tick)
            while ticks < due:
                self._engine.increment_epoch()
                ticks += 1


_engine_lock = threading.Lock()
_engine: wasmtime.Engine | None = None
_ticker: _Ticker | None = None


def _get_engine() -> tuple[wasmtime.Engine, _Ticker]:
    global _engine, _ticker
    with _engine_lock:
        if _engine is None or _ticker is None:
            config = wasmtime.Config()
            config.consume_fuel = True
            config.epoch_interruption = True
            # No shared memories or atomics: a call is single-threaded and owns its store.
            config.wasm_threads = False
            _engine = wasmtime.Engine(config)
            _ticker = _Ticker(_engine)
        return _engine, _ticker


# --- compiling and checking modules ----------------------------------------------------------

_modules: OrderedDict[str, wasmtime.Module] = OrderedDict()
_modules_lock = threading.Lock()


def module_from_source(source: bytes | str) -> bytes:
    """The module binary of `source`: WebAssembly bytes as they are, WAT text compiled.

    Raises WasmModuleError when WAT text does not parse.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return bytes(wasmtime.wat2wasm(source))
    except wasmtime.WasmtimeError as exc:
        raise WasmModuleError(f"WAT does not parse: {_first_line(exc)}") from exc


def compile_module(binary: bytes) -> wasmtime.Module:
    """The compiled module for these bytes, from the per-process cache when seen before.

    Raises WasmModuleError when the bytes are not a valid module.
    """
    digest = hashlib.sha256(binary).hexdigest()
    with _modules_lock:
        module = _modules.get(digest)
        if module is not None:
            _modules.move_to_end(digest)
            return module
    engine, _ = _get_engine()
    try:
        module = wasmtime.Module(engine, binary)
    except wasmtime.WasmtimeError as exc:
        raise WasmModuleError(f"not a valid WebAssembly module: {_first_line(exc)}") from exc
    with _modules_lock:
        _modules[digest] = module
        while len(_modules) > MODULE_CACHE_SIZE:
            _modules.popitem(last=False)
    return module


@dataclass(frozen=True)
class Limits:
    """The limits of every call of one function."""

    fuel: int
    max_memory_bytes: int
    timeout_ms: int


def inspect_module(binary: bytes, *, export: str, abi: str, limits: Limits) -> list[str]:
    """Check that a module can be called as `export` under `abi` within `limits`.

    Returns the problems found (empty when the module is usable); compiles the module (and
    caches it) and instantiates it once under the limits, so a start function that loops or
    a memory larger than the limit is caught at upload. Raises nothing.
    """
    problems: list[str] = []
    if len(binary) > _setting("WASM_MAX_MODULE_BYTES"):
        return [f"module is larger than {_setting('WASM_MAX_MODULE_BYTES')} bytes"]
    if abi not in ABIS:
        return [f"unknown ABI {abi!r}; use one of {', '.join(ABIS)}"]
    try:
        module = compile_module(binary)
    except WasmModuleError as exc:
        return [str(exc)]
    for item in module.imports:
        problems.append(
            f"module imports {item.module}.{item.name}; modules may not import anything"
        )
    exports = {item.name: item.type for item in module.exports}
    function = exports.get(export)
    if not isinstance(function, wasmtime.FuncType):
        problems.append(f"module does not export a function {export!r}")
    elif abi == "json":
        problems.extend(_check_signature(function, export, ["i32", "i32"], ["i64"]))
        alloc = exports.get("alloc")
        if not isinstance(alloc, wasmtime.FuncType):
            problems.append("the json ABI needs an exported function 'alloc'")
        else:
            problems.extend(_check_signature(alloc, "alloc", ["i32"], ["i32"]))
        if not isinstance(exports.get("memory"), wasmtime.MemoryType):
            problems.append("the json ABI needs an exported memory 'memory'")
    else:
        params = [str(t) for t in function.params]
        results = [str(t) for t in function.results]
        if (
            any(t not in NUMERIC_TYPES for t in params)
            or len(results) != 1
            or (results[0] not in NUMERIC_TYPES)
        ):
            problems.append(
                f"the numeric ABI needs numeric parameters and one numeric result; {export!r} "
                f"is ({', '.join(params)}) -> ({', '.join(results)})"
            )
    for name, kind in exports.items():
        if (
            isinstance(kind, wasmtime.MemoryType)
            and kind.limits.min * PAGE_BYTES > limits.max_memory_bytes
        ):
            problems.append(
                f"memory {name!r} starts at {kind.limits.min * PAGE_BYTES} bytes, above the "
                f"limit of {limits.max_memory_bytes}"
            )
    if problems:
        return problems
    try:
        _instantiate(module, limits)
    except WasmCallError as exc:
        problems.append(f"module does not start within its limits: {exc}")
    return problems


def _check_signature(
    function: wasmtime.FuncType, name: str, params: list[str], results: list[str]
) -> list[str]:
    actual_params = [str(t) for t in function.params]
    actual_results = [str(t) for t in function.results]
    if actual_params == params and actual_results == results:
        return []
    return [
        f"{name!r} must be ({', '.join(params)}) -> ({', '.join(results)}), "
        f"not ({', '.join(actual_params)}) -> ({', '.join(actual_results)})"
    ]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --- calling ---------------------------------------------------------------------------------


def _new_store(limits: Limits) -> wasmtime.Store:
    engine, _ = _get_engine()
    store = wasmtime.Store(engine)
    store.set_limits(
        memory_size=limits.max_memory_bytes,
        table_elements=MAX_TABLE_ELEMENTS,
        instances=1,
        tables=1,
        memories=1,
    )
    store.set_fuel(limits.fuel)
    tick_ms = _setting("WASM_EPOCH_TICK_MS")
    store.set_epoch_deadline(max(1, math.ceil(limits.timeout_ms / tick_ms)) + 1)
    return store


def _interrupted(error: WasmCallError) -> bool:
    """Whether the call was stopped by its wall-clock limit (the epoch interrupt)."""
    return getattr(error.__cause__, "trap_code", None) == wasmtime.TrapCode.INTERRUPT


def _trap_message(exc: Exception, limits: Limits) -> str:
    code = getattr(exc, "trap_code", None)
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return f"out of fuel (limit {limits.fuel})"
    if code == wasmtime.TrapCode.INTERRUPT:
        return f"timed out (limit {limits.timeout_ms} ms)"
    if code is not None:
        return f"trapped: {code.name.lower().replace('_', ' ')}"
    return f"failed: {_first_line(exc)}"


def _instantiate(module: wasmtime.Module, limits: Limits) -> tuple[wasmtime.Store, Any]:
    store = _new_store(limits)
    _, ticker = _get_engine()
    try:
        with ticker.running():
            instance = wasmtime.Instance(store, module, [])
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        raise WasmCallError(_trap_message(exc, limits)) from exc
    return store, instance


class _Memo(threading.local):
    """Results of this thread's calls during the current decision (keyed by its deadline)."""

    deadline: float = math.inf
    entries: dict[Any, tuple[bool, Any]] | None = None


_memo = _Memo()
MEMO_SIZE: Final = 256


def _memo_for(deadline: float) -> dict[Any, tuple[bool, Any]]:
    if _memo.deadline != deadline or _memo.entries is None:
        _memo.deadline, _memo.entries = deadline, {}
    return _memo.entries


def _remember(key: Any, entry: tuple[bool, Any]) -> None:
    entries = _memo.entries
    if entries is not None and len(entries) < MEMO_SIZE:
        entries[key] = entry


@dataclass(frozen=True)
class WasmFunctionSpec:
    """A callable WASM function: compiled module, export, ABI and limits (no database row).

    Built when rulesets are compiled; calling it never touches the database.
    """

    name: str
    version: int
    module: wasmtime.Module
    export: str
    abi: str
    limits: Limits

    @cached_property
    def params(self) -> list[str] | None:
        """Parameter types under the numeric ABI (None under json: any number of arguments)."""
        if self.abi != "json":
            for item in self.module.exports:
                if item.name == self.export and isinstance(item.type, wasmtime.FuncType):
                    return [str(t) for t in item.type.params]
        return None

    def __call__(self, *args: Any) -> Any:
        """Call the function with JSON arguments. Raises WasmCallError (see the module doc).

        Within one decision (one evaluation budget) a call with the same arguments is answered
        from a per-thread memo, success or failure: the rule set re-evaluates failing contexts
        rule by rule, and a runaway call must not burn its limits twice. The wall-clock limit
        is cut to what is left of the decision's evaluation budget.
        """
        from rules_engine.jsonlogic.limits import DEADLINE, budget_error, remaining

        key = None
        if DEADLINE.at != math.inf:
            try:
                key = (self.name, self.version, json.dumps(args, sort_keys=True))
            except (TypeError, ValueError):
                key = None
            if key is not None:
                memo = _memo_for(DEADLINE.at)
                if key in memo:
                    ok, value = memo[key]
                    if ok:
                        return value
                    raise value
        limits = self.limits
        left_ms = remaining() * 1000
        cut_to_budget = left_ms < limits.timeout_ms
        if cut_to_budget:
            limits = Limits(limits.fuel, limits.max_memory_bytes, max(1, math.ceil(left_ms)))
        try:
            if self.abi == "json":
                result = self._call_json(list(args), limits)
            else:
                result = self._call_numeric(args, limits)
        except WasmCallError as exc:
            error: Exception = exc
            if cut_to_budget and _interrupted(exc):
                # Stopped at the decision's deadline, not at its own limit: the budget ran out
                # (the epoch tick may stop it a moment before the clock says so).
                error = budget_error(())
            if key is not None:
                _remember(key, (False, error))
            if error is exc:
                raise
            raise error from exc
        if key is not None:
            _remember(key, (True, result))
        return result

    def _fail(self, message: str) -> WasmCallError:
        return WasmCallError(f"WASM function {self.name!r} v{self.version} {message}")

    def _call_json(self, args: list[Any], limits: Limits) -> Any:
        try:
            payload = json.dumps(args, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise self._fail(f"got arguments that are not JSON: {exc}") from exc
        store, instance = self._start(limits)
        _, ticker = _get_engine()
        exports = instance.exports(store)
        memory, alloc, function = exports["memory"], exports["alloc"], exports[self.export]
        try:
            with ticker.running():
                pointer = alloc(store, len(payload))
                self._check_range(store, memory, pointer, len(payload), "alloc returned")
                memory.write(store, payload, pointer)
                packed = function(store, pointer, len(payload))
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise self._fail(_trap_message(exc, limits)) from exc
        packed = int(packed) & 0xFFFF_FFFF_FFFF_FFFF
        start, length = packed >> 32, packed & 0xFFFF_FFFF
        if length > _setting("WASM_MAX_RESULT_BYTES"):
            raise self._fail(
                f"returned {length} bytes, more than {_setting('WASM_MAX_RESULT_BYTES')}"
            )
        self._check_range(store, memory, start, length, "returned")
        data = bytes(memory.read(store, start, start + length))
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._fail(f"returned invalid JSON: {exc}") from exc

    def _check_range(
        self, store: wasmtime.Store, memory: Any, start: Any, length: int, what: str
    ) -> None:
        size = memory.data_len(store)
        if not isinstance(start, int) or start < 0 or start + length > size:
            raise self._fail(f"{what} an address outside its memory ({start!r}+{length})")

    def _call_numeric(self, args: Sequence[Any], limits: Limits) -> Any:
        params = self.params or []
        if len(args) != len(params):
            raise self._fail(f"takes {len(params)} arguments, got {len(args)}")
        values: list[Any] = []
        for index, (kind, value) in enumerate(zip(params, args, strict=True)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._fail(f"argument {index} must be a number, got {value!r}")
            if kind in ("i32", "i64"):
                if isinstance(value, float) and not value.is_integer():
                    raise self._fail(f"argument {index} must be an integer, got {value!r}")
                bits = 32 if kind == "i32" else 64
                number = int(value)
                if not -(2 ** (bits - 1)) <= number < 2**bits:
                    raise self._fail(f"argument {index} does not fit {kind}: {value!r}")
                values.append(number - 2**bits if number >= 2 ** (bits - 1) else number)
            else:
                values.append(float(value))
        store, instance = self._start(limits)
        _, ticker = _get_engine()
        function = instance.exports(store)[self.export]
        try:
            with ticker.running():
                result = function(store, *values)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise self._fail(_trap_message(exc, limits)) from exc
        if isinstance(result, float) and not math.isfinite(result):
            return None  # JSON has no NaN or infinity (JSON.stringify makes them null)
        return result

    def _start(self, limits: Limits) -> tuple[wasmtime.Store, Any]:
        try:
            return _instantiate(self.module, limits)
        except WasmCallError as exc:
            raise self._fail(f"did not start: {exc}") from exc
