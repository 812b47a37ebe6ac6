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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

__all__ = ["Arity", "FunctionRegistry", "RegisteredFunction", "registry"]

# An exact count, an inclusive (minimum, maximum) range with None for "no maximum", or None
# for any number of arguments.
Arity = int | tuple[int, int | None] | None
AnyFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class RegisteredFunction:
    """A registered custom operator: its name, callable, arity and description."""

    name: str
    fn: AnyFunction
    arity: Arity
    description: str

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
        self, name: str, fn: None = None, *, arity: Arity = None, description: str = ""
    ) -> Callable[[AnyFunction], AnyFunction]: ...

    @overload
    def register(
        self, name: str, fn: AnyFunction, *, arity: Arity = None, description: str = ""
    ) -> AnyFunction: ...

    def register(
        self,
        name: str,
        fn: AnyFunction | None = None,
        *,
        arity: Arity = None,
        description: str = "",
    ) -> AnyFunction | Callable[[AnyFunction], AnyFunction]:
        """Register ``fn`` as operator ``name``; without ``fn``, return a decorator.

        Raises ValueError if the name is empty, is a built-in operator or is already
        registered, or if the arity is invalid; TypeError if ``fn`` is not callable.
        """
        if fn is None:

            def decorator(function: AnyFunction) -> AnyFunction:
                self.register(name, function, arity=arity, description=description)
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
            self._functions[name] = RegisteredFunction(name, fn, checked, description)
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
