"""Explanations of a JSONLogic evaluation: the tracing variant of the compiled rule.

:func:`explain` compiles the rule with the closure compiler itself (so every operator runs
the very builders of :mod:`.operators`, constant folding and pruning included, and the result
is exactly ``compile(rule)(data)``), but wraps the evaluator of every non-constant node in a
closure that records what the node evaluated to. Only :func:`explain` builds such closures:
:func:`~rules_engine.jsonlogic.compile` and the rule-set evaluator never trace, so decisions
pay nothing for explanations.

Each node of the returned tree is JSON::

    {"op": ">", "expression": "cart.total > 50", "result": true, "truthy": true,
     "args": [{"op": "var", "expression": "var cart.total", "var": "cart.total",
               "result": 80, "truthy": true, "args": []},
              {"op": "literal", "expression": "50", "result": 50, "truthy": true, "args": []}]}

* ``op``: the operator, ``"var"``, a custom function's name, ``"array"`` (an array whose items
  are computed), ``"literal"`` (a value known before evaluation: a constant, or a constant
  subtree the compiler folded) or ``"truncated"`` (the trace was cut, see below).
* ``expression``: short human text of the node (``all of 3``, ``some(cart.items, category ==
  "alcohol")``); ``result``: the value, as JSON (NaN/±Infinity/undefined as null, long strings
  and arrays shortened); ``truthy``: JSONLogic truthiness of the value (what decides a match).
* ``var`` nodes add ``"var"``: the path read. A node that raised adds ``"error"`` (its
  message; result null). Iterating operators (map, filter, reduce, all, some, none) add
  ``"iterations"`` (items evaluated) and, when more were evaluated than shown, ``"omitted"``;
  each shown per-item evaluation adds ``"item"`` (its index).
* Short-circuit operators (and, or, if, ?:) list only the arguments that were evaluated.
* Sensitive paths are masked: a ``var`` at or under one shows ``"***"``; one above it shows
  its value with the sensitive parts masked; any other node computed from a masked value shows
  ``"***"`` unless its result is a boolean or null.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Final

from rules_engine.functions import FunctionRegistry
from rules_engine.functions import registry as default_registry
from rules_engine.masking import MASK, mask_paths

from .compiler import DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES, _Compiler
from .errors import JsonLogicError, Path
from .operators import Arg
from .values import UNDEFINED, is_array, to_json, to_string, truthy

__all__ = ["MAX_ITEMS", "MAX_NODES", "MAX_STRING", "explain"]

# Nodes a trace holds at most (then one "truncated" node); item evaluations shown per iteration.
MAX_NODES: Final = 500
MAX_ITEMS: Final = 5
# Characters of a string value / of an expression; items of an array (keys of an object) and
# nesting shown of a value.
MAX_STRING: Final = 200
MAX_EXPRESSION: Final = 120
MAX_VALUE_ITEMS: Final = 20
MAX_VALUE_DEPTH: Final = 5

ITERATING: Final = frozenset({"map", "filter", "reduce", "all", "some", "none"})
_LAZY: Final = frozenset({"and", "or", "if", "?:"})
_INFIX: Final = frozenset(
    {"==", "!=", "===", "!==", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%"}
)

# A scope is where a sub-expression's data sits in the context: a path (segments, "*" for
# "any item"), or None when unknown (e.g. the items of a computed array).
Scope = tuple[str, ...] | None


# --------------------------------------------------------------------------- recording


class _Static:
    """What the compiler knows about one JSON node of the rule (built once per explain)."""

    __slots__ = ("children", "const", "op", "rule", "scope", "scoped", "value")

    def __init__(self, rule: Any, scope: Scope, scoped: bool) -> None:
        self.rule = rule
        self.scope = scope
        # This node is the per-item logic of an iterating operator.
        self.scoped = scoped
        self.children: list[_Static] = []
        self.const = False
        self.value: Any = None
        self.op = ""


class _Frame:
    """One recorded evaluation of a node."""

    __slots__ = ("children", "error", "item", "iterations", "result", "static", "truncated")

    def __init__(self, static: _Static, item: int | None) -> None:
        self.static = static
        self.item = item
        self.children: list[_Frame] = []
        self.result: Any = UNDEFINED
        self.error: str | None = None
        self.iterations = 0
        self.truncated = False


class _Recorder:
    """The evaluation being traced: a stack of frames, bounded in size."""

    def __init__(self, max_nodes: int, max_items: int) -> None:
        self.max_nodes = max_nodes
        self.max_items = max_items
        # Off while compiling: constant folding evaluates subtrees, which is not the run.
        self.active = False
        self.reset()

    def reset(self) -> None:
        """Forget the frames of an earlier run."""
        self.muted = 0
        self.count = 0
        self.stack: list[_Frame] = []
        self.roots: list[_Frame] = []
        self.truncated = False

    def wrap(self, static: _Static, fn: Any) -> Any:
        """An evaluator calling ``fn`` and recording the call under the current frame."""

        def traced(data: Any) -> Any:
            if not self.active or self.muted:
                return fn(data)
            parent = self.stack[-1] if self.stack else None
            item = None
            if static.scoped and parent is not None:
                item = parent.iterations
                parent.iterations += 1
                if item >= self.max_items:
                    return self._muted(fn, data)
            if self.count >= self.max_nodes:
                if parent is None:
                    self.truncated = True
                else:
                    parent.truncated = True
                return self._muted(fn, data)
            self.count += 1
            frame = _Frame(static, item)
            (self.roots if parent is None else parent.children).append(frame)
            self.stack.append(frame)
            try:
                frame.result = fn(data)
            except JsonLogicError as exc:
                frame.error = exc.message
                raise
            except RecursionError:
                frame.error = "data nests too deeply to evaluate"
                raise
            finally:
                self.stack.pop()
            return frame.result

        return traced

    def _muted(self, fn: Any, data: Any) -> Any:
        self.muted += 1
        try:
            return fn(data)
        finally:
            self.muted -= 1


class _TracingCompiler(_Compiler):
    """The closure compiler, wrapping every non-constant node's evaluator in a recorder."""

    def __init__(
        self, max_depth: int, max_nodes: int, functions: FunctionRegistry, recorder: _Recorder
    ) -> None:
        super().__init__(max_depth, max_nodes, functions)
        self.recorder = recorder
        self._parents: list[_Static] = [_Static(None, (), False)]
        # (operator, arguments path, source rule) of the operations being compiled.
        self._operations: list[tuple[str, Path, Any]] = []

    def node(self, rule: Any, path: Path, depth: int) -> Arg:
        parent = self._parents[-1]
        scope, scoped = parent.scope, False
        if self._operations:
            operator, args_path, values = self._operations[-1]
            if operator in ITERATING and path == (*args_path, 1):
                scoped = True
                scope = _item_scope(operator, values, parent.scope)
        static = _Static(rule, scope, scoped)
        self._parents.append(static)
        try:
            arg = super().node(rule, path, depth)
        finally:
            self._parents.pop()
        parent.children.append(static)
        if arg.const:
            static.const, static.value = True, arg.value
            return arg
        if isinstance(rule, dict):
            ((operator, _),) = rule.items()
            static.op = str(operator)
        else:
            static.op = "array"
        return Arg(self.recorder.wrap(static, arg.fn), const=False, pure=arg.pure)

    def _operation(self, rule: dict[Any, Any], path: Path, level: int) -> Arg:
        ((operator, values),) = rule.items()
        name = operator if isinstance(operator, str) else str(operator)
        self._operations.append((name, (*path, name), values))
        try:
            return super()._operation(rule, path, level)
        finally:
            self._operations.pop()


def _item_scope(operator: str, values: Any, scope: Scope) -> Scope:
    """The scope of an iteration's items: known when it iterates a ``var`` of known scope."""
    source = values[0] if is_array(values) and len(values) > 0 else None
    if scope is None or not (isinstance(source, dict) and len(source) == 1):
        return None
    key = source.get("var", UNDEFINED)
    if is_array(key):
        key = key[0] if len(key) > 0 else None
    if key is None or key == "":
        segments: tuple[str, ...] = ()
    elif isinstance(key, (str, int)) and not isinstance(key, bool):
        segments = tuple(str(key).split("."))
    else:
        return None
    item = (*scope, *segments, "*")
    # reduce's logic sees {"current": item, "accumulator": ...}: marked by a leading "".
    return ("", *item) if operator == "reduce" else item


# --------------------------------------------------------------------------- masking


def _matches(pattern: Sequence[str], path: Sequence[str]) -> bool:
    return all(a == b or a == "*" or b == "*" for a, b in zip(pattern, path, strict=False))


def _mask_var(value: Any, scope: Scope, segments: list[str], sensitive: list[list[str]]) -> Any:
    """The value a ``var`` shows: MASK at or under a sensitive path, masked inside above one."""
    if not sensitive:
        return value
    if scope is not None and scope[:1] == ("",):
        # Inside reduce: "current" is the item, "accumulator" anything.
        head, rest = (segments[0], segments[1:]) if segments else ("", [])
        if head == "current":
            return _mask_var(value, scope[1:], rest, sensitive)
        if head == "accumulator":
            return _mask_var(value, None, rest, sensitive)
        return value
    pairs: list[tuple[list[str], list[str]]]
    if scope is not None:
        full = [*scope, *segments]
        pairs = [(pattern, full) for pattern in sensitive]
    else:
        # Unknown place in the context: any tail of a sensitive path naming the field counts.
        pairs = [
            (pattern[start:], segments) for pattern in sensitive for start in range(len(pattern))
        ]
    for pattern, path in pairs:
        if not _matches(pattern, path):
            continue
        if len(path) >= len(pattern):
            return MASK
        value = mask_paths(value, [".".join(pattern[len(path) :])])
    return value


# --------------------------------------------------------------------------- output


def _json_value(value: Any, depth: int = 0) -> Any:
    """A bounded JSON rendering of a value (to_json, with long strings/arrays shortened)."""
    if value is UNDEFINED:
        return None
    if isinstance(value, str):
        text = str.__str__(value)
        return text if len(text) <= MAX_STRING else text[:MAX_STRING] + "…"
    if is_array(value):
        if depth >= MAX_VALUE_DEPTH:
            return "…"
        items = [_json_value(item, depth + 1) for item in list(value)[:MAX_VALUE_ITEMS]]
        if len(value) > MAX_VALUE_ITEMS:
            items.append(f"… {len(value) - MAX_VALUE_ITEMS} more")
        return items
    if isinstance(value, dict):
        if depth >= MAX_VALUE_DEPTH:
            return "…"
        result = {}
        for index, (key, item) in enumerate(value.items()):
            if index == MAX_VALUE_ITEMS:
                result["…"] = f"{len(value) - MAX_VALUE_ITEMS} more keys"
                break
            if item is not UNDEFINED:
                result[key if isinstance(key, str) else to_string(key)] = _json_value(
                    item, depth + 1
                )
        return result
    try:
        return to_json(value)
    except TypeError:
        return "[object Object]"


def _shown(value: Any) -> bool:
    """Whether a value computed from a masked one may still be shown (it tells nothing)."""
    return value is None or value is UNDEFINED or isinstance(value, bool)


class _Builder:
    """Turns recorded frames into the JSON tree, bounded to ``max_nodes`` nodes."""

    def __init__(self, max_nodes: int, sensitive: list[list[str]]) -> None:
        self.max_nodes = max_nodes
        self.sensitive = sensitive
        self.count = 0
        self.full = False
        self.marked = False

    def _take(self) -> bool:
        if self.count >= self.max_nodes:
            self.full = True
            return False
        self.count += 1
        return True

    def truncated(self) -> dict[str, Any]:
        return {
            "op": "truncated",
            "expression": f"trace truncated (at most {self.max_nodes} nodes)",
            "result": None,
            "truthy": False,
            "args": [],
        }

    def literal(self, static: _Static) -> dict[str, Any] | None:
        if not self._take():
            return None
        return {
            "op": "literal",
            "expression": _expression(static.rule, top=False),
            "result": _json_value(static.value),
            "truthy": truthy(static.value),
            "args": [],
        }

    def frame(self, frame: _Frame) -> tuple[dict[str, Any] | None, bool]:
        """The node of a frame and whether its value derives from a masked one."""
        if not self._take():
            return None, False
        static = frame.static
        args: list[dict[str, Any]] = []
        tainted = self._arguments(frame, args)
        raw = None if frame.error is not None else frame.result
        node: dict[str, Any] = {"op": static.op, "expression": ""}
        if static.op == "var":
            key = self._var_key(static, frame)
            node["var"] = key
            computed = static.children and not static.children[0].const
            node["expression"] = (
                _clip(f"var {key or 'data'}") if computed else _expression(static.rule, top=True)
            )
            shown = _mask_var(raw, static.scope, key.split(".") if key else [], self.sensitive)
            tainted = tainted or shown is not raw
            node["result"] = _json_value(shown)
        else:
            node["expression"] = _expression(static.rule, top=True)
            node["result"] = MASK if tainted and not _shown(raw) else _json_value(raw)
        node["truthy"] = truthy(raw)
        node["args"] = args
        if frame.error is not None:
            node["error"] = frame.error
        if static.op in ITERATING and len(static.children) > 1 and not static.children[1].const:
            node["iterations"] = frame.iterations
            shown_items = sum(1 for child in frame.children if child.item is not None)
            if frame.iterations > shown_items:
                node["omitted"] = frame.iterations - shown_items
        if frame.item is not None:
            node["item"] = frame.item
        return node, tainted

    @staticmethod
    def _var_key(static: _Static, frame: _Frame) -> str:
        values = static.rule["var"]
        key = values[0] if is_array(values) and len(values) > 0 else values
        if is_array(values) and len(values) == 0:
            key = None
        if isinstance(key, dict):  # computed key: the value its argument evaluated to
            key_static = static.children[0]
            if key_static.const:
                key = key_static.value
            else:
                computed = [child for child in frame.children if child.static is key_static]
                key = computed[0].result if computed else None
        if key is None or key is UNDEFINED:
            return ""
        return to_string(key)

    def _arguments(self, frame: _Frame, out: list[dict[str, Any]]) -> bool:
        """Append the argument nodes of ``frame`` to ``out``; whether any is tainted."""
        static = frame.static
        pending = list(frame.children)
        tainted = False

        def take(child: _Static) -> _Frame | None:
            for index, candidate in enumerate(pending):
                if candidate.static is child:
                    return pending.pop(index)
            return None

        def emit(child: _Static) -> tuple[bool, Any]:
            """Emit one evaluated argument; (reached, its value)."""
            nonlocal tainted
            if child.const:
                node = self.literal(child)
                if node is not None:
                    out.append(node)
                return True, child.value
            record = take(child)
            if record is None:
                return False, None
            node, child_tainted = self.frame(record)
            tainted = tainted or child_tainted
            if node is not None:
                out.append(node)
            if record.error is not None:
                return False, None
            return True, record.result

        children = static.children
        if static.op in ("and", "or"):
            for child in children:
                reached, value = emit(child)
                if not reached or truthy(value) == (static.op == "or"):
                    break
        elif static.op in ("if", "?:"):
            index, count = 0, len(children)
            while index < count - 1:
                reached, value = emit(children[index])
                if not reached:
                    break
                if truthy(value):
                    emit(children[index + 1])
                    break
                index += 2
            else:
                if count == index + 1:
                    emit(children[index])
        else:
            for child in children:
                if child.const:
                    if static.op != "var":  # a var's own path is already its "var"
                        emit(child)
                    continue
                while take_next := take(child):
                    node, child_tainted = self.frame(take_next)
                    tainted = tainted or child_tainted
                    if node is not None:
                        out.append(node)
        # Anything recorded that the walk above did not place (should not happen) is kept.
        for record in pending:
            node, child_tainted = self.frame(record)
            tainted = tainted or child_tainted
            if node is not None:
                out.append(node)
        if (self.full or frame.truncated) and not self.marked:
            # One marker, where the trace was cut (the node count stays max_nodes + 1).
            self.marked = True
            out.append(self.truncated())
        return tainted


# --------------------------------------------------------------------------- expressions


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EXPRESSION else text[: MAX_EXPRESSION - 1] + "…"


def _expression(rule: Any, *, top: bool) -> str:
    """Short human text of a rule node: ``cart.total > 50``, ``all of 3``, ``var x``."""
    return _clip(_text(rule, 0, top=top))


def _literal_text(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _operation(rule: Any) -> tuple[str, list[Any]] | None:
    if isinstance(rule, dict) and len(rule) == 1:
        ((operator, values),) = rule.items()
        return str(operator), list(values) if is_array(values) else [values]
    return None


def _text(rule: Any, depth: int, *, top: bool = False) -> str:
    if depth > 6:
        return "…"
    operation = _operation(rule)
    if operation is None:
        if is_array(rule):
            return "[" + ", ".join(_text(item, depth + 1) for item in list(rule)[:10]) + "]"
        return _literal_text(rule)
    op, args = operation

    def sub(value: Any) -> str:
        inner = _operation(value)
        text = _text(value, depth + 1)
        needs_parens = inner is not None and (
            inner[0] in _INFIX
            or inner[0] in _LAZY
            or inner[0] in ("!", "!!")
            or (inner[0] == "var" and len(inner[1]) > 1)  # "a ?? 0"
        )
        return f"({text})" if needs_parens else text

    if op == "var":
        key = args[0] if args else None
        if isinstance(key, dict):
            name = f"var({_text(key, depth + 1)})"
        else:
            name = "data" if key is None or key == "" else str(key)
        if len(args) > 1:
            name = f"{name} ?? {sub(args[1])}"
        return f"var {name}" if top else name
    if op == "and":
        return f"all of {len(args)}"
    if op == "or":
        return f"any of {len(args)}"
    if op == "!":
        return f"not {sub(args[0]) if args else 'undefined'}"
    if op == "!!":
        return f"!!{sub(args[0]) if args else 'undefined'}"
    if op in ("if", "?:"):
        parts = []
        index = 0
        while index < len(args) - 1:
            parts.append(f"if {sub(args[index])} then {sub(args[index + 1])}")
            index += 2
        text = " else ".join(parts)
        if index == len(args) - 1:
            text = f"{text} else {sub(args[index])}" if parts else sub(args[index])
        return text
    if op in _INFIX:
        if len(args) == 1 and op in ("-", "+"):
            return f"{op}{sub(args[0])}"
        if len(args) == 2 or (len(args) == 3 and op in ("<", "<=")) or op in ("+", "*"):
            return f" {op} ".join(sub(arg) for arg in args)
    return f"{op}({', '.join(_text(arg, depth + 1) for arg in args)})"


# --------------------------------------------------------------------------- entry point


def explain(
    rule_json: Any,
    data: Any,
    *,
    functions: FunctionRegistry | None = None,
    sensitive_paths: Iterable[str] = (),
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_rule_nodes: int = DEFAULT_MAX_NODES,
    max_nodes: int = MAX_NODES,
    max_items: int = MAX_ITEMS,
) -> dict[str, Any]:
    """Evaluate ``rule_json`` against ``data`` like ``compile(rule_json)(data)`` and explain it.

    Returns the root node of the explanation tree (format in the module docstring); its
    ``result`` is the compiled rule's result as JSON. A run-time failure does not raise: the
    failing node and its ancestors carry ``"error"``. ``sensitive_paths`` (dotted, ``*`` for
    any key/item) are masked as in the audit snapshot. ``max_depth``/``max_rule_nodes`` bound
    the rule as the compiler does; ``max_nodes`` the trace, ``max_items`` the item evaluations
    shown per iteration. Raises JsonLogicCompileError when the rule does not compile.
    """
    explainer = Explainer(
        rule_json,
        functions=functions,
        max_depth=max_depth,
        max_rule_nodes=max_rule_nodes,
        max_nodes=max_nodes,
        max_items=max_items,
    )
    return explainer.explain(data, sensitive_paths=sensitive_paths)


class Explainer:
    """A rule compiled once for explaining, then run against any number of contexts (`explain`
    compiles one per call; the engine keeps one per rule version for dry runs). Thread-safe:
    runs take turns, since the recorder the compiled closures write into is shared.

    Raises JsonLogicCompileError when the rule does not compile.
    """

    def __init__(
        self,
        rule_json: Any,
        *,
        functions: FunctionRegistry | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_rule_nodes: int = DEFAULT_MAX_NODES,
        max_nodes: int = MAX_NODES,
        max_items: int = MAX_ITEMS,
    ) -> None:
        self._rule_json = rule_json
        self._max_nodes = max_nodes
        self._recorder = _Recorder(max_nodes, max_items)
        self._compiler = _TracingCompiler(
            max_depth,
            max_rule_nodes,
            default_registry if functions is None else functions,
            self._recorder,
        )
        self._root = self._compiler.compile_root(rule_json)
        self._lock = threading.Lock()

    def explain(self, data: Any, *, sensitive_paths: Iterable[str] = ()) -> dict[str, Any]:
        """The explanation tree of one evaluation against ``data`` (see `explain`)."""
        with self._lock:
            return self._explain(data, sensitive_paths)

    def _explain(self, data: Any, sensitive_paths: Iterable[str]) -> dict[str, Any]:
        rule_json, recorder, compiler = self._rule_json, self._recorder, self._compiler
        recorder.reset()
        error: str | None = None
        recorder.active = True
        try:
            result = self._root.fn(data)
        except JsonLogicError as exc:
            error, result = exc.message, None
        except RecursionError:
            error, result = "data nests too deeply to evaluate", None
        finally:
            recorder.active = False
        builder = _Builder(self._max_nodes, [path.split(".") for path in sensitive_paths])
        top_static = compiler._parents[0].children[-1]
        if top_static.const or not recorder.roots:
            # A constant rule (or one folded whole) is its own literal; a rule cut before its
            # root could be recorded has only its result.
            node = builder.literal(top_static) if top_static.const else None
            if node is None:
                node = {
                    "op": top_static.op or "literal",
                    "expression": _expression(rule_json, top=True),
                    "result": _json_value(result),
                    "truthy": truthy(result),
                    "args": [builder.truncated()],
                }
            if error is not None:
                node["error"] = error
            return node
        node, _ = builder.frame(recorder.roots[0])
        assert node is not None  # the first node always fits
        return node
