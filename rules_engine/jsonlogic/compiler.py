"""Compile JSONLogic rules into nested Python closures (json-logic-js 2.x semantics).

The rule's JSON tree is walked exactly once, at compile time: every operator node becomes a
closure built by the operator's builder (see :mod:`.operators`), constant subtrees are folded
into values, and the result is wrapped in :class:`Compiled`. Calling a :class:`Compiled` runs
the closures only; it never looks at the JSON again.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from rules_engine.functions import FunctionRegistry, RegisteredFunction
from rules_engine.functions import registry as default_registry

from .errors import JsonLogicBudgetError, JsonLogicCompileError, JsonLogicRuntimeError, Path
from .limits import DEADLINE, budget, budget_error
from .limits import _clock as _limits_clock
from .operators import OPERATORS, Arg, Evaluator, OperatorSpec, copy_value
from .values import UNDEFINED, is_array

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_NODES", "Compiled", "apply", "compile"]

DEFAULT_MAX_DEPTH: Final = 64
DEFAULT_MAX_NODES: Final = 5000
# Time one compilation may spend folding constant subtrees (iterations over constants).
FOLD_BUDGET_SECONDS: Final = 0.1


def _values_within(value: Any, limit: int) -> bool:
    """Whether the JSON value holds at most ``limit`` values (counting stops past it)."""
    count = 0
    stack = [value]
    while stack:
        current = stack.pop()
        count += 1
        if count > limit:
            return False
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, (list, tuple)):
            stack.extend(current)
    return True


class Compiled:
    """A compiled rule: call it with the data to evaluate the rule.

    ``rule`` is a snapshot of the source JSON; ``node_count`` the number of JSON values in it.
    Calling raises JsonLogicRuntimeError when evaluation genuinely fails (a custom function
    raised, or json-logic-js would throw a TypeError for this data).
    """

    __slots__ = ("_evaluate", "node_count", "rule")

    def __init__(self, evaluate: Evaluator, rule: Any, node_count: int) -> None:
        self._evaluate = evaluate
        self.rule = rule
        self.node_count = node_count

    def __call__(self, data: Any = None) -> Any:
        """Evaluate the rule against ``data``; ``undefined`` comes back as None.

        Raises JsonLogicRuntimeError (see the class docstring).
        """
        try:
            result = self._evaluate(data)
        except RecursionError as exc:  # only absurdly deep *data* can get here
            raise JsonLogicRuntimeError("data nests too deeply to evaluate", ()) from exc
        return None if result is UNDEFINED else result

    def __repr__(self) -> str:
        text = json.dumps(self.rule, default=repr)
        if len(text) > 80:
            text = text[:77] + "..."
        return f"<Compiled {text}>"


def _call_function(function: RegisteredFunction, args: Sequence[Arg], path: Path) -> Evaluator:
    """Evaluator calling a custom function with the evaluated arguments.

    The evaluation budget is checked before every call (a function may be slow where
    operators are not). Errors the function raises become JsonLogicRuntimeError at ``path``;
    a JsonLogicRuntimeError it raises (a limit, the budget) keeps its class.
    """
    fn = function.fn
    name = function.name
    fns = tuple(arg.fn for arg in args)

    def call(data: Any) -> Any:
        values = [arg_fn(data) for arg_fn in fns]
        for index, value in enumerate(values):
            if value is UNDEFINED:  # functions only ever see JSON values
                values[index] = None
        if _limits_clock() > DEADLINE.at:
            raise budget_error(path)
        try:
            return fn(*values)
        except JsonLogicBudgetError as exc:
            # The decision's budget ran out during the call: the same error as anywhere else.
            raise budget_error(path) from exc
        except JsonLogicRuntimeError as exc:
            raise type(exc)(f"function {name!r}: {exc.message}", path) from exc
        except Exception as exc:
            raise JsonLogicRuntimeError(
                f"function {name!r} raised {type(exc).__name__}: {exc}", path
            ) from exc

    return call


class _Compiler:
    """One compilation: walks the tree, enforces the limits, builds the closures."""

    def __init__(self, max_depth: int, max_nodes: int, functions: FunctionRegistry) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.functions = functions
        self.nodes = 0

    def _count(self, path: Path) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise JsonLogicCompileError(f"rule has more than {self.max_nodes} nodes", path)

    def _enter(self, level: int, path: Path) -> None:
        # ``level`` is the nesting depth of a container: the root container is level 1.
        if level > self.max_depth:
            raise JsonLogicCompileError(f"rule nests deeper than {self.max_depth} levels", path)

    def compile_root(self, rule: Any) -> Arg:
        """Compile a whole rule. Raises JsonLogicCompileError (also for absurd nesting)."""
        try:
            # Folding evaluates constant subtrees now; loops over constant arrays are bounded
            # by a budget like any evaluation (what does not fold in time stays a run-time
            # node, evaluated under the request's budget).
            with budget(FOLD_BUDGET_SECONDS):
                return self.node(rule, (), 0)
        except RecursionError as exc:
            raise JsonLogicCompileError("rule nests too deeply to compile", ()) from exc

    def node(self, rule: Any, path: Path, depth: int) -> Arg:
        """Compile any JSON value; ``depth`` counts the containers around it."""
        self._count(path)
        if isinstance(rule, dict):
            self._enter(depth + 1, path)
            if len(rule) == 1:
                return self._operation(rule, path, depth + 1)
            # json-logic-js only treats single-key objects as logic; others are data.
            return Arg.constant(self._literal(rule, path, depth + 1))
        if is_array(rule):
            self._enter(depth + 1, path)
            items = [self.node(item, (*path, index), depth + 1) for index, item in enumerate(rule)]
            if all(item.const for item in items):
                return Arg.constant([item.value for item in items])
            fns = tuple(item.fn for item in items)
            return Arg(
                lambda data: [fn(data) for fn in fns],
                const=False,
                pure=all(item.pure for item in items),
            )
        return Arg.constant(rule)

    def _literal(self, value: Any, path: Path, level: int) -> Any:
        """Copy a literal container (a multi-key object), counting and bounding its nodes."""
        if isinstance(value, dict):
            return {
                key: self._literal_child(
                    item, (*path, key if isinstance(key, str) else str(key)), level
                )
                for key, item in value.items()
            }
        return [
            self._literal_child(item, (*path, index), level) for index, item in enumerate(value)
        ]

    def _literal_child(self, value: Any, path: Path, level: int) -> Any:
        self._count(path)
        if isinstance(value, dict) or is_array(value):
            self._enter(level + 1, path)
            return self._literal(value, path, level + 1)
        return value

    def _arguments(self, values: Any, path: Path, level: int) -> list[Arg]:
        # {"op": x} is shorthand for {"op": [x]} when x is not an array.
        if is_array(values):
            self._count(path)
            self._enter(level + 1, path)
            return [self.node(item, (*path, index), level + 1) for index, item in enumerate(values)]
        return [self.node(values, path, level)]

    def _operation(self, rule: dict[Any, Any], path: Path, level: int) -> Arg:
        ((operator, values),) = rule.items()
        spec = OPERATORS.get(operator) if isinstance(operator, str) else None
        function = None
        if spec is None:
            function = self.functions.get(operator) if isinstance(operator, str) else None
            if function is None:
                raise JsonLogicCompileError(f"unknown operator {operator!r}", path)
        args_path = (*path, operator if isinstance(operator, str) else str(operator))
        args = self._arguments(values, args_path, level)
        if spec is not None:
            return self._builtin(spec, args, path)
        assert function is not None
        if not function.accepts(len(args)):
            raise JsonLogicCompileError(
                f"function {operator!r} takes {function.describe_arity()}, got {len(args)}", path
            )
        # Hook of rules_engine.functions: functions bound at compile time (named lists, WASM).
        if function.bind is not None:
            arg_paths = (
                [(*args_path, i) for i in range(len(args))] if is_array(values) else [args_path]
            )
            function = function.bound(args, path, arg_paths)
        return Arg(_call_function(function, args, path), const=False, pure=False)

    def _builtin(self, spec: OperatorSpec, args: list[Arg], path: Path) -> Arg:
        if len(args) < spec.min_args:
            raise JsonLogicCompileError(spec.arity_message, path)
        evaluator = spec.build(args, path)
        pure = spec.pure and all(arg.pure for arg in args)
        foldable = (
            pure
            and not spec.reads_data
            and all(
                arg.pure if index in spec.scoped else arg.const for index, arg in enumerate(args)
            )
        )
        if foldable:
            try:
                value = evaluator(None)
            except JsonLogicRuntimeError:
                pass  # keep it a run-time failure, as json-logic-js would have it
            else:
                # A folded constant is copied on every use: keep only those no larger than
                # a rule may be, so no evaluation copies more than that per node.
                if type(value) not in (list, tuple, dict) or _values_within(value, self.max_nodes):
                    return Arg.constant(value)
        return Arg(evaluator, const=False, pure=pure)


def compile(
    rule: Any,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    functions: FunctionRegistry | None = None,
) -> Compiled:
    """Compile a JSONLogic rule (already parsed JSON) into a :class:`Compiled` callable.

    ``max_depth`` bounds the nesting of JSON containers, ``max_nodes`` the number of JSON
    values; ``functions`` is the registry of custom operators (default: the project-wide
    ``rules_engine.functions.registry``). Raises JsonLogicCompileError for unknown operators,
    arities json-logic-js would throw on, and exceeded limits; the error's ``path`` points at
    the offending node.
    """
    compiler = _Compiler(max_depth, max_nodes, default_registry if functions is None else functions)
    root = compiler.compile_root(rule)
    return Compiled(root.fn, copy_value(rule), compiler.nodes)


class _CompiledCache:
    """A small thread-safe LRU of compiled rules keyed by their JSON text."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, int], Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, rule: Any) -> Compiled:
        # Rules that serialise identically (e.g. a tuple and a list) share an entry; they also
        # compile identically, except for non-string keys of literal objects, which JSON
        # cannot tell from strings: an accepted corner for a convenience cache.
        try:
            text = json.dumps(rule, separators=(",", ":"))
        except (TypeError, ValueError):  # not JSON (e.g. a datetime constant): no caching
            return compile(rule)
        key = (text, default_registry.generation)
        with self._lock:
            compiled = self._entries.get(key)
            if compiled is not None:
                self._entries.move_to_end(key)
                return compiled
        compiled = compile(rule)
        with self._lock:
            self._entries[key] = compiled
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CACHE: Final = _CompiledCache(512)


def apply(rule: Any, data: Any = None) -> Any:
    """Evaluate ``rule`` against ``data``: ``compile(rule)(data)`` with an LRU cache.

    Raises JsonLogicCompileError / JsonLogicRuntimeError like :func:`compile` and
    :class:`Compiled`.
    """
    if isinstance(rule, dict) or is_array(rule):
        return _CACHE.get(rule)(data)
    return compile(rule)(data)
