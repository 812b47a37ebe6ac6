"""Registry of custom JSONLogic operators ("functions") callable from rules.

A function is a plain Python callable that receives the operator's *evaluated* arguments and
returns a value; it must be pure (no I/O, no hidden state), because rules are expected to give
the same answer for the same data. Rules can only call what is registered here by name: there
is no way for a rule to reach any other Python object.

Usage::

    from rules_engine.functions import registry

    @registry.register("double", arity=1, description="Twice the number")
    def double(x):
        return x * 2

The compiler looks operators up in :data:`registry` (or in the registry passed as
``compile(rule, functions=...)``) after the built-in operators. A compiled rule keeps the
function it was compiled with; registering or unregistering later affects new compilations
only (``apply``'s cache is invalidated through :attr:`FunctionRegistry.generation`).

Functions that depend on stored data (named lists, WebAssembly modules: see
:mod:`rules_engine.functions.operators`) register a ``bind`` hook as well. The compiler calls
``bind(constants)`` once per operator node, at compile time, with the argument values that are
constants (:data:`NOT_CONSTANT` for the others); the hook returns the callable the node will
call at run time (e.g. bound to the list's contents) or raises :class:`FunctionBindError`,
which the compiler turns into a JsonLogicCompileError at the offending argument's path. That is
how a rule naming an unknown list is refused when it is saved, and how the list's contents are
loaded with the compiled ruleset rather than read on every call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, overload

__all__ = [
    "NOT_CONSTANT",
    "AnyFunction",
    "Arity",
    "Binder",
    "FunctionBindError",
    "FunctionRegistry",
    "RegisteredFunction",
    "registry",
]

# An exact count, an inclusive (minimum, maximum) range with None for "no maximum", or None
# for any number of arguments.
Arity = int | tuple[int, int | None] | None
AnyFunction = Callable[..., Any]


class _NotConstant:
    """Type of :data:`NOT_CONSTANT`."""

    _instance: _NotConstant | None = None

    def __new__(cls) -> _NotConstant:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_CONSTANT"


NOT_CONSTANT: Any = _NotConstant()
"""Stands, in the constants passed to a ``bind`` hook, for an argument computed at run time."""

# bind(constants) -> the callable to run for this node; raises FunctionBindError.
Binder = Callable[[tuple[Any, ...]], AnyFunction]


class FunctionBindError(ValueError):
    """A ``bind`` hook refused its arguments; ``argument`` is the offending index or None."""

    def __init__(self, message: str, argument: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument


@dataclass(frozen=True, slots=True)
class RegisteredFunction:
    """A registered custom operator: its name, callable, arity and description."""

    name: str
    fn: AnyFunction
    arity: Arity
    description: str
    bind: Binder | None = None

    def bound(self, args: Sequence[Any], path: Any, arg_paths: Sequence[Any]) -> RegisteredFunction:
        """This function with ``fn`` replaced by what ``bind`` returns for these arguments.

        ``args`` are the compiled arguments (objects with ``const`` and ``value``), ``path``
        the operator node's path and ``arg_paths`` each argument's. Raises
        JsonLogicCompileError (at the offending argument's path) when ``bind`` refuses.
        """
        if self.bind is None:
            return self
        # Imported here: the JSONLogic package imports this module at import time.
        from rules_engine.jsonlogic.errors import JsonLogicCompileError

        constants = tuple(arg.value if arg.const else NOT_CONSTANT for arg in args)
        try:
            fn = self.bind(constants)
        except FunctionBindError as exc:
            where = path
            if exc.argument is not None and exc.argument < len(arg_paths):
                where = arg_paths[exc.argument]
            raise JsonLogicCompileError(exc.message, where) from exc
        return replace(self, fn=fn, bind=None)

    def accepts(self, count: int) -> bool:
        """Return True if the function may be called with ``count`` arguments. Raises nothing."""
        if self.arity is None:
            return True
        if isinstance(self.arity, int):
            return count == self.arity
        minimum, maximum = self.arity
        return count >= minimum and (maximum is None or count <= maximum)

    def describe_arity(self) -> str:
        """Return the arity in words, e.g. "1 argument" or "2 to 3 arguments". Raises nothing."""
        if self.arity is None:
            return "any number of arguments"
        if isinstance(self.arity, int):
            return f"{self.arity} argument{'' if self.arity == 1 else 's'}"
        minimum, maximum = self.arity
        if maximum is None:
            return f"at least {minimum} argument{'' if minimum == 1 else 's'}"
        return f"{minimum} to {maximum} arguments"


def _check_arity(arity: Arity) -> Arity:
    if arity is None:
        return None
    if isinstance(arity, bool) or not isinstance(arity, (int, tuple)):
        raise TypeError(f"arity must be an int, a (min, max) tuple or None, not {arity!r}")
    if isinstance(arity, int):
        if arity < 0:
            raise ValueError(f"arity must not be negative, got {arity}")
        return arity
    if len(arity) != 2:
        raise ValueError(f"an arity range is (min, max), got {arity!r}")
    minimum, maximum = arity
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        raise ValueError(f"arity minimum must be a non-negative int, got {minimum!r}")
    if maximum is not None and (
        isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < minimum
    ):
        raise ValueError(f"arity maximum must be None or an int >= {minimum}, got {maximum!r}")
    return (minimum, maximum)


def _builtin_operators() -> frozenset[str]:
    # Imported lazily: the JSONLogic compiler imports this module, so a top-level import of
    # the compiler package from here would be circular.
    from rules_engine.jsonlogic.operators import BUILTIN_OPERATORS

    return BUILTIN_OPERATORS


class FunctionRegistry:
    """A thread-safe name -> function table for custom JSONLogic operators."""

    def __init__(self) -> None:
        self._functions: dict[str, RegisteredFunction] = {}
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        """A counter bumped by every (un)registration, for caches of compiled rules."""
        return self._generation

    @overload
    def register(
        self,
        name: str,
        fn: None = None,
        *,
        arity: Arity = None,
        description: str = "",
        bind: Binder | None = None,
    ) -> Callable[[AnyFunction], AnyFunction]: ...

    @overload
    def register(
        self,
        name: str,
        fn: AnyFunction,
        *,
        arity: Arity = None,
        description: str = "",
        bind: Binder | None = None,
    ) -> AnyFunction: ...

    def register(
        self,
        name: str,
        fn: AnyFunction | None = None,
        *,
        arity: Arity = None,
        description: str = "",
        bind: Binder | None = None,
    ) -> AnyFunction | Callable[[AnyFunction], AnyFunction]:
        """Register ``fn`` as operator ``name``; without ``fn``, return a decorator.

        ``bind``, when given, is called at compile time for every node using the function
        (see the module docstring) and returns the callable that node runs.

        Raises ValueError if the name is empty, is a built-in operator or is already
        registered, or if the arity is invalid; TypeError if ``fn`` is not callable.
        """
        if fn is None:

            def decorator(function: AnyFunction) -> AnyFunction:
                self.register(name, function, arity=arity, description=description, bind=bind)
                return function

            return decorator
        if not isinstance(name, str) or not name:
            raise ValueError(f"function name must be a non-empty string, got {name!r}")
        if name in _builtin_operators():
            raise ValueError(f"{name!r} is a built-in JSONLogic operator")
        if not callable(fn):
            raise TypeError(f"function {name!r} must be callable, got {fn!r}")
        checked = _check_arity(arity)
        with self._lock:
            if name in self._functions:
                raise ValueError(f"function {name!r} is already registered")
            self._functions[name] = RegisteredFunction(name, fn, checked, description, bind)
            self._generation += 1
        return fn

    def unregister(self, name: str) -> None:
        """Remove a registered function. Raises KeyError if it is not registered."""
        with self._lock:
            if name not in self._functions:
                raise KeyError(name)
            del self._functions[name]
            self._generation += 1

    def get(self, name: str) -> RegisteredFunction | None:
        """Return the registered function called ``name``, or None. Raises nothing."""
        return self._functions.get(name)

    def names(self) -> list[str]:
        """Return the registered names, sorted. Raises nothing."""
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __len__(self) -> int:
        return len(self._functions)


registry = FunctionRegistry()
