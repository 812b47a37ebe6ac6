"""JSONLogic operators backed by stored data: `in_list` (named lists) and `wasm` (modules).

* ``{"in_list": [list_name, value]}`` is true when `value` is a member of the named list:
  for a strings list an equal string, for a numbers list an equal number (numeric strings
  count), for an ip_ranges list an IP address inside any of its networks. Anything else
  (null, objects, malformed addresses) is simply not a member.
* ``{"wasm": [function_name, arg1, arg2, ...]}`` calls the active WebAssembly function with
  the evaluated arguments and returns its result (see `rules_engine.functions.sandbox` for
  the calling conventions and limits).

In both, the name must be a literal string naming an existing list / active function: a rule
that names anything else is refused when it is saved (the error's path points at the name).
The list contents and the compiled module are bound to the rule when it is compiled, so a
decision reads neither from the database; changing them recompiles rulesets everywhere.
Registered into the project-wide registry by `FunctionsConfig.ready()`.
"""

from __future__ import annotations

from typing import Any

from rules_engine.functions import (
    NOT_CONSTANT,
    AnyFunction,
    FunctionBindError,
    FunctionRegistry,
    registry,
)

IN_LIST = "in_list"
WASM = "wasm"


def _name(constants: tuple[Any, ...], what: str) -> str:
    name = constants[0] if constants else NOT_CONSTANT
    if name is NOT_CONSTANT:
        raise FunctionBindError(f"the {what} name must be a literal string", 0)
    if not isinstance(name, str):
        raise FunctionBindError(f"the {what} name must be a string, got {name!r}", 0)
    return name


def _unbound(*args: Any) -> Any:
    # Never called: the compiler always binds these operators first.
    raise RuntimeError("operator used without compile-time binding")


def bind_in_list(constants: tuple[Any, ...]) -> AnyFunction:
    """Bind `{"in_list": [name, value]}` to the list's matcher. Raises FunctionBindError."""
    from rules_engine.functions.catalog import catalog

    name = _name(constants, "list")
    matcher = catalog.named_list(name)
    if matcher is None:
        raise FunctionBindError(f"no named list {name!r}", 0)

    def in_list(_name: Any, value: Any) -> bool:
        return value in matcher

    return in_list


def bind_wasm(constants: tuple[Any, ...]) -> AnyFunction:
    """Bind `{"wasm": [name, ...]}` to the function's compiled module. Raises FunctionBindError."""
    from rules_engine.functions.catalog import catalog

    name = _name(constants, "WASM function")
    spec = catalog.wasm_function(name)
    if spec is None:
        raise FunctionBindError(f"no active WASM function {name!r}", 0)
    params = spec.params
    given = len(constants) - 1
    if params is not None and given != len(params):
        raise FunctionBindError(
            f"WASM function {name!r} takes {len(params)} argument"
            f"{'' if len(params) == 1 else 's'}, got {given}"
        )

    def call(_name: Any, *args: Any) -> Any:
        return spec(*args)

    return call


def register(functions: FunctionRegistry = registry) -> None:
    """Register `in_list` and `wasm` (once). Raises nothing when they are already there."""
    if IN_LIST not in functions:
        functions.register(
            IN_LIST,
            _unbound,
            arity=2,
            description="Membership of a value in a named list (strings, numbers, IP ranges).",
            bind=bind_in_list,
        )
    if WASM not in functions:
        functions.register(
            WASM,
            _unbound,
            arity=(1, None),
            description="Call a user-supplied WebAssembly function by name with JSON arguments.",
            bind=bind_wasm,
        )
