"""Python source generation for compiled rule sets (internal to :mod:`.ruleset`).

The generator walks the :class:`~.tree.Node` trees of a rule set and writes Python functions
that evaluate many rules in one call. Every inline fragment mirrors the closure that
:mod:`.operators` builds for the same node shape (same fast paths, same slow-path helpers), so
results equal ``compile(rule)(data)`` by construction; any node it does not specialise calls
the recorded closure of that node instead.

Safety: the generated text never contains anything taken from a rule. Every constant (strings,
numbers, keys, paths) is bound as a global of the generated module under a generated name
(``_k12``) and referenced by that name; identifiers are all produced here. :func:`check_source`
verifies this before anything is compiled: the text may only use a fixed character set with
no quotes, backslashes or ``#``, so a rule can never smuggle code into it. The module runs with
a ``__builtins__`` of exactly the few builtins the fragments use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .limits import iterate
from .operators import (
    _SLOW,
    _index_other,
    _is_whole_data_key,
    _js_in,
    _missing_keys,
    copy_value,
)
from .tree import TRUE_NODE, Node
from .values import (
    K_STR,
    UNDEFINED,
    is_array,
    js_divide,
    js_remainder,
    kind,
    loose_equal,
    parse_float,
    strict_contains,
    strict_equal,
    string_to_number,
    to_number,
    to_string,
    truthy,
)

__all__ = ["RUNTIME", "Code", "FunctionGen", "Module", "Scope", "check_source"]

# Static knowledge about a generated expression's Python value.
T_ANY: Final = 0  # anything (a JSON value, UNDEFINED, a data object)
T_BOOL: Final = 1  # exactly a bool
T_FLOAT: Final = 2  # exactly a float
T_STR: Final = 3  # exactly a str
T_LIST: Final = 4  # exactly a fresh list
T_TRUTH: Final = 5  # only its Python truthiness is meaningful (a truth test, not a value)

# Kinds whose Python truthiness equals JSONLogic truthiness (so ``and``/``or``/``not`` apply).
_PY_TRUTHY: Final = frozenset({T_BOOL, T_STR, T_LIST, T_TRUTH})

# Deeper nodes are evaluated by their closure: keeps generated expressions far from CPython's
# parser limits (200 nested parentheses, 20 nested loops).
MAX_INLINE_DEPTH: Final = 24

_SAFE_INT: Final = 2**53

# --------------------------------------------------------------------------- runtime helpers


def _step(container: Any, segment: str) -> Any:
    """One ``var`` path step into anything but an exact dict (mirrors ``operators.walk``)."""
    if container is None or container is UNDEFINED:
        return UNDEFINED
    return _index_other(container, segment)


_PLAIN_TYPES: Final = frozenset({int, float, bool, list, dict, tuple, type(None)})


def _missing_slow(value: Any) -> bool:
    """``missing``'s test for values that are not an exact str, None or a plain JSON type."""
    return kind(value) == K_STR and value == ""


def _missing_list(keys: tuple[Any, ...], values: tuple[Any, ...]) -> list[Any]:
    """``missing`` with constant keys: the keys whose looked-up value counts as missing."""
    return [
        key
        for key, value in zip(keys, values, strict=True)
        if value is None or (kind(value) == K_STR and value == "")
    ]


def _subtract(left: Any, right: Any) -> float:
    """``-`` with a right operand only known at run time (it may be undefined)."""
    a = left if type(left) is float else to_number(left)
    if right is UNDEFINED:
        return -a
    return a - (right if type(right) is float else to_number(right))


def _slow_dispatch(
    tests: tuple[tuple[Callable[[Any], Any], Any], ...], data: Any
) -> tuple[Any, ...]:
    """Index fallback for unusual key values: run each group's own test closure."""
    return tuple(group for test, group in tests if test(data))


def _union(first: tuple[Any, ...], second: tuple[Any, ...]) -> tuple[Any, ...]:
    """Concatenate two tuples of group functions without running any group twice."""
    return tuple(dict.fromkeys(first + second))


_NOT_YET: Final = object()

RUNTIME: Final[dict[str, Any]] = {
    "_U": UNDEFINED,
    "_N": _NOT_YET,
    "_tr": truthy,
    "_leq": loose_equal,
    "_seq": strict_equal,
    "_lt": _SLOW["<"],
    "_le": _SLOW["<="],
    "_gt": _SLOW[">"],
    "_ge": _SLOW[">="],
    "_sc": strict_contains,
    "_ts": to_string,
    "_jsin": _js_in,
    "_isarr": is_array,
    "_pf": parse_float,
    "_tn": to_number,
    "_div": js_divide,
    "_rem": js_remainder,
    "_sub": _subtract,
    "_cp": copy_value,
    "_step": _step,
    "_PLAIN": _PLAIN_TYPES,
    "_mis": _missing_slow,
    "_ml": _missing_list,
    "_s2n": string_to_number,
    "_slow": _slow_dispatch,
    "_union": _union,
    "_SAFE": _SAFE_INT,
    "_iter": iterate,
    # The only builtins generated code uses; nothing else is reachable from it.
    "__builtins__": {
        "type": type,
        "dict": dict,
        "float": float,
        "int": int,
        "str": str,
        "list": list,
    },
}

_ITERATION_OPS: Final = frozenset({"map", "filter", "reduce", "all", "none", "some"})
_SLOW_NAME: Final = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_MIRROR: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}

# Generated source may only contain these characters: no quotes (so no string literal, hence
# no rule text), no backslash, no ``#``. Identifiers are produced by the generator only.
_SOURCE_ALPHABET: Final = re.compile(r"[A-Za-z0-9_ \n()\[\]:=.,<>!+\-*/%]*")


def check_source(source: str) -> None:
    """Refuse generated text that could hold anything but generated code.

    Raises RuntimeError (an internal error: the generator never produces such text).
    """
    if not _SOURCE_ALPHABET.fullmatch(source):
        raise RuntimeError("generated rule-set source contains unexpected characters")


# --------------------------------------------------------------------------- constants


def _is_scalar(value: Any) -> bool:
    return type(value) not in (list, tuple, dict)


def _is_number(value: Any) -> bool:
    t = type(value)
    return t is int or t is float


def dedupe_key(value: Any) -> tuple[Any, ...] | None:
    """A key under which equal constants may share one global; None when they must not.

    Floats are keyed by their hex form so ``-0.0`` never merges with ``0.0``.
    """
    t = type(value)
    if t is float:
        return (float, value.hex())
    if t is str or t is int or t is bool or value is None:
        return (t, value)
    if t is tuple and all(dedupe_key(item) is not None for item in value):
        return (tuple, tuple(dedupe_key(item) for item in value))
    if t is frozenset and all(type(item) in (str, int) for item in value):
        return (frozenset, value)
    return None


class Module:
    """One generated module: its global namespace and the names it hands out. Raises nothing."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = dict(RUNTIME)
        self._constants: dict[tuple[Any, ...], str] = {}
        self._counter = 0

    def name(self, prefix: str) -> str:
        """A fresh module-wide identifier such as ``_k12``."""
        self._counter += 1
        return f"{prefix}{self._counter}"

    def constant(self, value: Any) -> str:
        """Bind ``value`` as a global and return its name (shared between equal scalars)."""
        key = dedupe_key(value)
        if key is not None:
            known = self._constants.get(key)
            if known is not None:
                return known
        name = self.name("_k")
        self.namespace[name] = value
        if key is not None:
            self._constants[key] = name
        return name

    def bind(self, prefix: str, value: Any) -> str:
        """Bind an object (a closure, an index table) as a global under a fresh name."""
        name = self.name(prefix)
        self.namespace[name] = value
        return name


# --------------------------------------------------------------------------- code fragments


@dataclass(slots=True)
class Code:
    """A generated expression and the statements that must run before it.

    ``simple``: the expression is a name or constant (cheap and free of effects, may be
    repeated). ``undef``: it may evaluate to UNDEFINED. ``truth``: an optional cheaper
    expression with the same JSONLogic truthiness (e.g. ``missing`` tested by ``!``).
    """

    expr: str
    kind: int = T_ANY
    lines: list[str] = field(default_factory=list)
    simple: bool = False
    undef: bool = False
    truth: str | None = None
    owner: Scope | None = None  # set for a looked-up variable: its scope can hoist type()


def truth_of(first: str, then: str, kind_: int) -> str:
    """JSONLogic truthiness of a value whose first use is ``first`` and later uses ``then``."""
    if kind_ in _PY_TRUTHY:
        return first
    if kind_ == T_FLOAT:
        return f"({first} == {then} and {then} != 0.0)"
    return f"({first} is True or ({then} is not False and _tr({then})))"


def _indent(lines: Iterable[str]) -> list[str]:
    return ["    " + line for line in lines]


def _join_kind(kinds: Sequence[int]) -> int:
    first = kinds[0]
    return first if all(k == first for k in kinds) and first != T_TRUTH else T_ANY


class Scope:
    """Where ``var`` paths resolve: the rule data or an iteration item.

    Every path is looked up once per scope entry, by statements emitted at its start; shared
    prefixes (``user`` for ``user.age`` and ``user.tier``) are looked up once too.
    """

    def __init__(self, module: Module, function: FunctionGen, var: str) -> None:
        self.module = module
        self.function = function
        self.var = var
        self.prologue: list[str] = []
        self._raw: dict[tuple[str, ...], str] = {}
        self._defaulted: dict[tuple[Any, ...], str] = {}
        self._types: dict[str, str] = {}

    def raw(self, segments: tuple[str, ...]) -> str:
        """The local holding the value at ``segments`` (UNDEFINED when missing)."""
        known = self._raw.get(segments)
        if known is not None:
            return known
        parent = self.var if len(segments) == 1 else self.raw(segments[:-1])
        segment = self.module.constant(segments[-1])
        name = self.function.temp("_v")
        self.prologue.append(
            f"{name} = {parent}.get({segment}, _U) if type({parent}) is dict "
            f"else _step({parent}, {segment})"
        )
        self._raw[segments] = name
        return name

    def defaulted(self, segments: tuple[str, ...], default: Any) -> str:
        """The local holding ``{"var": [path, default]}`` for a scalar default."""
        key = (segments, dedupe_key(default) or ("id", id(default)))
        known = self._defaulted.get(key)
        if known is not None:
            return known
        raw = self.raw(segments)
        name = self.function.temp("_v")
        self.prologue.append(f"{name} = {raw} if {raw} is not _U else {self._const(default)}")
        self._defaulted[key] = name
        return name

    def type_of(self, name: str) -> str:
        """A local holding ``type(name)`` for a looked-up value, computed once per entry."""
        known = self._types.get(name)
        if known is None:
            known = self._types[name] = self.function.temp("_y")
            self.prologue.append(f"{known} = type({name})")
        return known

    def _const(self, value: Any) -> str:
        if value is None or value is True or value is False:
            return repr(value)
        return self.module.constant(value)


# --------------------------------------------------------------------------- the generator

Handler = Callable[["FunctionGen", Node, Scope], "Code | None"]
_HANDLERS: dict[str, Handler] = {}


def _handles(*operators: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for operator in operators:
            _HANDLERS[operator] = handler
        return handler

    return register


_UNDEF_NODE: Final = Node("const", lambda _data: UNDEFINED, value=UNDEFINED)
_NULL_NODE: Final = Node("const", lambda _data: None, value=None)


def _arg(node: Node, index: int) -> Node:
    return node.args[index] if index < len(node.args) else _UNDEF_NODE


def _effects_free(nodes: Iterable[Node]) -> bool:
    """Arguments json-logic-js evaluates only for their effects: constants have none."""
    return all(n.const for n in nodes)


# Operators whose result may be shared between the rules of one function (when it comes out
# immutable: a bool, float or str), so equal subtrees are evaluated at most once per context.
_SHAREABLE: Final = frozenset(
    {
        "==", "!=", "===", "!==", "<", "<=", ">", ">=", "in", "!", "!!",
        "some", "all", "none", "+", "-", "*", "/", "%", "and", "or", "if", "?:",
    }
)  # fmt: skip
_SHARE_KINDS: Final = frozenset({T_BOOL, T_FLOAT, T_STR})


def structural_key(value: Any) -> Any:
    """A hashable key equal for constants that behave identically (types kept apart)."""
    key = dedupe_key(value)
    if key is not None:
        return key
    t = type(value)
    if t is list or t is tuple:
        return ("list", tuple(structural_key(item) for item in value))
    if t is dict:
        return ("dict", tuple((k, structural_key(v)) for k, v in value.items()))
    return ("object", id(value))


class FunctionGen:
    """Generates the body of one Python function; ``data`` is its rule data parameter."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self._temps = 0
        self.depth = 0
        self.root = Scope(module, self, "data")
        self._keys: dict[int, tuple[Node, int]] = {}
        self._interned: dict[Any, int] = {}
        self._counts: dict[int, int] = {}
        self._shared: dict[int, Code] = {}

    def key(self, node: Node) -> int:
        """The structural key of a subtree: equal for equal subtrees (memoised per node).

        Keys are interned to small ints so that parents' keys stay flat tuples of ints
        (nested tuples would be rehashed whole on every lookup).
        """
        memo = self._keys.get(id(node))
        if memo is not None and memo[0] is node:
            return memo[1]
        if node.kind == "const":
            shape: Any = ("const", structural_key(node.value))
        else:
            shape = (node.kind, node.op, *(self.key(arg) for arg in node.args))
        key = self._interned.setdefault(shape, len(self._interned))
        # The memo holds the node itself: an id is only unique while its object lives.
        self._keys[id(node)] = (node, key)
        return key

    def prepare(self, roots: Iterable[Node]) -> None:
        """Count the data-scope subtrees of the rules this function will evaluate."""
        stack = list(roots)
        while stack:
            node = stack.pop()
            if node.kind == "const":
                continue
            if node.kind == "op" and node.op in _SHAREABLE and node.pure:
                key = self.key(node)
                self._counts[key] = self._counts.get(key, 0) + 1
            if node.kind == "op" and node.op in _ITERATION_OPS:
                stack.append(_arg(node, 0))  # the logic runs on items: another scope
                stack.extend(node.args[2:])
            else:
                stack.extend(node.args)

    def temp(self, prefix: str = "_t") -> str:
        """A fresh function-local identifier."""
        self._temps += 1
        return f"{prefix}{self._temps}"

    # ---------------------------------------------------------------- building blocks

    def const(self, value: Any) -> Code:
        """A constant as a fresh value each time (containers are copied, like the closures)."""
        if value is True or value is False:
            return Code(repr(value), T_BOOL, simple=True)
        if value is None:
            return Code("None", simple=True)
        if value is UNDEFINED:
            return Code("_U", simple=True, undef=True)
        t = type(value)
        if t is list or t is tuple:
            return Code(f"_cp({self.module.constant(value)})", T_LIST)
        if t is dict:
            return Code(f"_cp({self.module.constant(value)})")
        name = self.module.constant(value)
        if t is str:
            return Code(name, T_STR, simple=True)
        if t is float:
            return Code(name, T_FLOAT, simple=True)
        return Code(name, simple=True)

    def fallback(self, node: Node, scope: Scope) -> Code:
        """Evaluate ``node`` with its own closure."""
        name = self.module.bind("_f", node.fn)
        return Code(f"{name}({scope.var})", undef=True)

    def once(self, code: Code) -> tuple[str, str]:
        """(first use, later uses) of an expression evaluated exactly once (walrus)."""
        if code.simple:
            return code.expr, code.expr
        name = self.temp()
        return f"({name} := {code.expr})", name

    def materialize(self, code: Code) -> tuple[list[str], str]:
        """Statements computing ``code`` into a local, and that local."""
        if code.simple:
            return list(code.lines), code.expr
        name = self.temp()
        return [*code.lines, f"{name} = {code.expr}"], name

    def sequence(self, codes: Sequence[Code]) -> tuple[list[str], list[str]]:
        """Evaluate ``codes`` left to right (as the closures do) even where some need statements."""
        last = max((i for i, code in enumerate(codes) if code.lines), default=-1)
        lines: list[str] = []
        exprs: list[str] = []
        for index, code in enumerate(codes):
            lines.extend(code.lines)
            if index < last and not code.simple:
                name = self.temp()
                lines.append(f"{name} = {code.expr}")
                exprs.append(name)
            else:
                exprs.append(code.expr)
        return lines, exprs

    def truth(self, code: Code) -> Code:
        """A Python truth test of ``code`` equal to JSONLogic truthiness (``truthy``)."""
        if code.truth is not None:
            return Code(code.truth, T_BOOL, list(code.lines))
        if code.kind in _PY_TRUTHY:
            return Code(code.expr, T_BOOL if code.kind == T_BOOL else T_TRUTH, list(code.lines))
        first, then = self.once(code)
        return Code(truth_of(first, then, code.kind), T_BOOL, list(code.lines))

    def typed(self, code: Code) -> tuple[str, str, str]:
        """(``type(value)`` first use, its later uses, later uses of the value).

        The first use evaluates the value; it must come before any other use.
        """
        if code.owner is not None and code.owner is self.root:
            # Hoisted once per context; in a loop body it would cost a statement per item.
            name = code.owner.type_of(code.expr)
            return name, name, code.expr
        if code.simple:
            return f"type({code.expr})", f"type({code.expr})", code.expr
        value = self.temp()
        kind_name = self.temp("_y")
        return f"({kind_name} := type(({value} := {code.expr})))", kind_name, value

    def as_bool(self, test: Code) -> str:
        return test.expr if test.kind == T_BOOL else f"(True if {test.expr} else False)"

    def number(self, code: Code) -> Code:
        """``_number(x)``: the value itself for floats, else ``to_number``."""
        if code.kind == T_FLOAT:
            return code
        first, then, value = self.typed(code)
        return Code(
            f"({value} if {first} is float else "
            f"({value} + 0.0 if {then} is int else _tn({value})))",
            T_FLOAT,
            code.lines,
        )

    def parse_float(self, code: Code) -> Code:
        """``parse_float(x)`` (ints go through ``+ 0.0``: an overflow raises, and the rule set
        then re-evaluates with the closures, which return infinity)."""
        if code.kind == T_FLOAT:
            return Code(f"({code.expr} + 0.0)", T_FLOAT, code.lines)
        first, then, value = self.typed(code)
        return Code(
            f"({value} + 0.0 if ({first} is float or {then} is int) else _pf({value}))",
            T_FLOAT,
            code.lines,
        )

    # ---------------------------------------------------------------- nodes

    def value(self, node: Node, scope: Scope) -> Code:
        """Code computing ``node``'s value, exactly as its closure would."""
        if node.kind == "const":
            return self.const(node.value)
        if scope is self.root and node.kind == "op" and node.op in _SHAREABLE and node.pure:
            key = self.key(node)
            if self._counts.get(key, 0) >= 2:
                shared = self._shared.get(key)
                if shared is None:
                    code = self._value(node, scope)
                    if code.kind not in _SHARE_KINDS or code.undef:
                        return code
                    shared = self._shared[key] = self._share(code)
                return Code(shared.expr, shared.kind, list(shared.lines), simple=shared.simple)
        return self._value(node, scope)

    def _share(self, code: Code) -> Code:
        """Compute ``code`` at its first use in a context and reuse it afterwards.

        Sound because the subtree is pure (no ``log``, no custom function) and its value is
        immutable, so nobody can tell one evaluation from two.
        """
        name = self.temp("_c")
        self.root.prologue.append(f"{name} = _N")
        if code.lines:
            lines = [f"if {name} is _N:", *_indent([*code.lines, f"{name} = {code.expr}"])]
            return Code(name, code.kind, lines, simple=True)
        return Code(f"({name} if {name} is not _N else ({name} := {code.expr}))", code.kind)

    def _value(self, node: Node, scope: Scope) -> Code:
        if node.kind == "func" or self.depth >= MAX_INLINE_DEPTH:
            return self.fallback(node, scope)
        self.depth += 1
        try:
            if node.kind == "array":
                lines, exprs = self.sequence([self.value(item, scope) for item in node.args])
                return Code(f"[{', '.join(exprs)}]", T_LIST, lines)
            handler = _HANDLERS.get(node.op)
            code = handler(self, node, scope) if handler is not None else None
            return self.fallback(node, scope) if code is None else code
        finally:
            self.depth -= 1

    def result(self, node: Node, scope: Scope) -> Code:
        """Like :meth:`value`, with a top-level ``undefined`` turned into None (as Compiled)."""
        code = self.value(node, scope)
        if not code.undef:
            return code
        first, then = self.once(code)
        return Code(f"(None if {first} is _U else {then})", code.kind, code.lines)


# --------------------------------------------------------------------------- var & missing


@_handles("var")
def _var(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    key, default = _arg(node, 0), _arg(node, 1)
    if not key.const or not _effects_free(node.args[2:]):
        return None
    if _is_whole_data_key(key.value):
        if not _effects_free(node.args[1:]):
            return None
        return Code(scope.var, simple=True, undef=True)
    if not default.const:
        return None
    segments = tuple(to_string(key.value).split("."))
    if _is_scalar(default.value):
        value = None if default.value is UNDEFINED else default.value
        return Code(scope.defaulted(segments, value), simple=True, owner=scope)
    raw = scope.raw(segments)
    if type(default.value) in (list, tuple) and not default.value:
        fresh = "[]"
    elif type(default.value) is dict and not default.value:
        fresh = "{}"
    else:
        fresh = f"_cp({gen.module.constant(default.value)})"
    return Code(f"({raw} if {raw} is not _U else {fresh})")


def _missing_test(name: str) -> str:
    return (
        f"({name} is None or (not {name} if type({name}) is str "
        f"else (type({name}) not in _PLAIN and _mis({name}))))"
    )


@_handles("missing")
def _missing(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if not _effects_free(node.args):
        return None
    keys = list(_missing_keys([arg.value for arg in node.args]))
    if not all(_is_scalar(key) for key in keys):
        return None
    if not keys:
        return Code("[]", T_LIST, truth="False")
    names = [
        scope.var
        if _is_whole_data_key(key)
        else scope.defaulted(tuple(to_string(key).split(".")), None)
        for key in keys
    ]
    keys_name = gen.module.constant(tuple(keys))
    values = ", ".join(names)
    return Code(
        f"_ml({keys_name}, ({values},))",
        T_LIST,
        truth="(" + " or ".join(_missing_test(name) for name in names) + ")",
    )


# --------------------------------------------------------------------------- logic


@_handles("if", "?:")
def _if(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    args = node.args
    pairs: list[tuple[Node, Node]] = []
    count = len(args)
    index = 0
    final: Node
    while index < count - 1:
        condition, consequent = args[index], args[index + 1]
        if condition.const:
            if truthy(condition.value):
                final = consequent
                break
        else:
            pairs.append((condition, consequent))
        index += 2
    else:
        final = args[index] if count == index + 1 else _NULL_NODE
    if not pairs:
        return gen.value(final, scope)
    tests = [gen.truth(gen.value(condition, scope)) for condition, _ in pairs]
    branches = [gen.value(consequent, scope) for _, consequent in pairs]
    otherwise = gen.value(final, scope)
    kind_ = _join_kind([*(b.kind for b in branches), otherwise.kind])
    undef = otherwise.undef or any(b.undef for b in branches)
    if (
        not any(t.lines for t in tests[1:])
        and not any(b.lines for b in branches)
        and not (otherwise.lines)
    ):
        expr = otherwise.expr
        for test, branch in zip(reversed(tests), reversed(branches), strict=True):
            expr = f"({branch.expr} if {test.expr} else {expr})"
        return Code(expr, kind_, list(tests[0].lines), undef=undef)
    target = gen.temp()

    def branch_lines(index: int) -> list[str]:
        if index == len(tests):
            return [*otherwise.lines, f"{target} = {otherwise.expr}"]
        test, branch = tests[index], branches[index]
        return [
            *test.lines,
            f"if {test.expr}:",
            *_indent([*branch.lines, f"{target} = {branch.expr}"]),
            "else:",
            *_indent(branch_lines(index + 1)),
        ]

    return Code(target, kind_, branch_lines(0), simple=True, undef=undef)


def _prune_chain(args: Sequence[Node], stop_when: bool) -> list[Node]:
    """``operators._prune_chain`` on nodes: drop constants that can't be the result."""
    kept: list[Node] = []
    last = len(args) - 1
    for index, arg in enumerate(args):
        if arg.const and index != last:
            if truthy(arg.value) == stop_when:
                kept.append(arg)
                break
            continue
        kept.append(arg)
    return kept


def _chain(gen: FunctionGen, node: Node, scope: Scope, is_and: bool) -> Code | None:
    if not node.args:
        return Code("_U", simple=True, undef=True)
    chain = _prune_chain(node.args, stop_when=not is_and)
    codes = [gen.value(arg, scope) for arg in chain]
    if len(codes) == 1:
        return codes[0]
    kind_ = _join_kind([c.kind for c in codes])
    undef = any(c.undef for c in codes)
    if not any(c.lines for c in codes[1:]):
        expr = codes[-1].expr
        for code in reversed(codes[:-1]):
            if code.kind in _PY_TRUTHY:
                expr = f"({code.expr} {'and' if is_and else 'or'} {expr})"
                continue
            # The walrus in the condition binds the operand before either branch runs.
            name = gen.temp()
            test = truth_of(f"({name} := {code.expr})", name, code.kind)
            if is_and:
                expr = f"({expr} if {test} else {name})"
            else:
                expr = f"({name} if {test} else {expr})"
        truth = None
        if all(c.kind in _PY_TRUTHY or c.truth is not None for c in codes):
            parts = [c.truth if c.truth is not None else c.expr for c in codes]
            truth = "(" + (" and " if is_and else " or ").join(parts) + ")"
        return Code(expr, kind_, list(codes[0].lines), undef=undef, truth=truth)
    target = gen.temp()

    def operand_lines(index: int) -> list[str]:
        code = codes[index]
        lines = [*code.lines, f"{target} = {code.expr}"]
        if index == len(codes) - 1:
            return lines
        test = truth_of(target, target, code.kind)
        return [
            *lines,
            f"if {test}:" if is_and else f"if not {test}:",
            *_indent(operand_lines(index + 1)),
        ]

    return Code(target, kind_, operand_lines(0), simple=True, undef=undef)


@_handles("and")
def _and(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    return _chain(gen, node, scope, is_and=True)


@_handles("or")
def _or(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    return _chain(gen, node, scope, is_and=False)


@_handles("!")
def _not(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if not _effects_free(node.args[1:]):
        return None
    test = gen.truth(gen.value(_arg(node, 0), scope))
    return Code(f"(not {test.expr})", T_BOOL, test.lines)


@_handles("!!")
def _not_not(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if not _effects_free(node.args[1:]):
        return None
    test = gen.truth(gen.value(_arg(node, 0), scope))
    return Code(gen.as_bool(test), T_BOOL, test.lines)


# --------------------------------------------------------------------------- equality


def _equality(
    gen: FunctionGen, node: Node, scope: Scope, strict: bool, negate: bool
) -> Code | None:
    if not _effects_free(node.args[2:]):
        return None
    left, right = _arg(node, 0), _arg(node, 1)
    if left.const and not right.const:
        left, right = right, left
    slow = "_seq" if strict else "_leq"
    if right.const and _is_scalar(right.value):
        constant = right.value
        if _is_number(constant):
            if constant != constant:  # NaN equals nothing; the operand is evaluated for effects
                if not left.pure:
                    return None
                return Code(repr(negate), T_BOOL, simple=True)
            code = gen.value(left, scope)
            k = gen.module.constant(constant)
            if code.kind == T_FLOAT:
                return Code(f"({code.expr} {'!=' if negate else '=='} {k})", T_BOOL, code.lines)
            first, then, value = gen.typed(code)
            fast = f"({first} is int or {then} is float)"
            then = value
            if negate:
                expr = f"({then} != {k} if {fast} else not {slow}({then}, {k}))"
            else:
                expr = f"({then} == {k} if {fast} else {slow}({then}, {k}))"
            return Code(expr, T_BOOL, code.lines)
        if type(constant) is str:
            code = gen.value(left, scope)
            k = gen.module.constant(constant)
            first, _, then = gen.typed(code)
            # null never equals a string, loosely or strictly.
            if negate:
                expr = (
                    f"({then} != {k} if {first} is str "
                    f"else ({then} is None or not {slow}({then}, {k})))"
                )
            else:
                expr = (
                    f"({then} == {k} if {first} is str "
                    f"else ({then} is not None and {slow}({then}, {k})))"
                )
            return Code(expr, T_BOOL, code.lines)
    lines, (a, b) = gen.sequence([gen.value(left, scope), gen.value(right, scope)])
    expr = f"{slow}({a}, {b})"
    return Code(f"(not {expr})" if negate else expr, T_BOOL, lines)


@_handles("==")
def _loose_equal(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    return _equality(gen, node, scope, strict=False, negate=False)


@_handles("!=")
def _loose_not_equal(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    return _equality(gen, node, scope, strict=False, negate=True)


@_handles("===")
def _strict_equal(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    return _equality(gen, node, scope, strict=True, negate=False)


@_handles("!==")
def _strict_not_equal(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    return _equality(gen, node, scope, strict=True, negate=True)


# --------------------------------------------------------------------------- relational


def _binary_relational(gen: FunctionGen, op: str, left: Node, right: Node, scope: Scope) -> Code:
    if left.const and not right.const:
        op = _MIRROR[op]
        left, right = right, left
    slow = _SLOW_NAME[op]
    if right.const and _is_number(right.value):
        code = gen.value(left, scope)
        k = gen.module.constant(right.value)
        if code.kind == T_FLOAT:
            return Code(f"({code.expr} {op} {k})", T_BOOL, code.lines)
        first, then, value = gen.typed(code)
        return Code(
            f"({value} {op} {k} if ({first} is int or {then} is float) else {slow}({value}, {k}))",
            T_BOOL,
            code.lines,
        )
    if right.const and _is_scalar(right.value):
        code = gen.value(left, scope)
        return Code(f"{slow}({code.expr}, {gen.const(right.value).expr})", T_BOOL, code.lines)
    lines, (a, b) = gen.sequence([gen.value(left, scope), gen.value(right, scope)])
    return Code(f"{slow}({a}, {b})", T_BOOL, lines)


def _relational(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    op = node.op
    args = node.args
    left, middle = _arg(node, 0), _arg(node, 1)
    if op not in ("<", "<=") or len(args) < 3 or (args[2].const and args[2].value is UNDEFINED):
        if not _effects_free(args[2:]):
            return None
        return _binary_relational(gen, op, left, middle, scope)
    upper = args[2]
    if not _effects_free(args[3:]):
        return None
    if not (left.const and upper.const and _is_number(left.value) and _is_number(upper.value)):
        return None
    low = gen.module.constant(left.value)
    high = gen.module.constant(upper.value)
    code = gen.value(middle, scope)
    if code.kind == T_FLOAT:
        return Code(f"({low} {op} {code.expr} {op} {high})", T_BOOL, code.lines)
    slow = _SLOW_NAME[op]
    first, then, value = gen.typed(code)
    return Code(
        f"({low} {op} {value} {op} {high} if ({first} is int or {then} is float) "
        f"else ({slow}({low}, {value}) and {slow}({value}, {high})))",
        T_BOOL,
        code.lines,
    )


for _op in ("<", "<=", ">", ">="):
    _HANDLERS[_op] = _relational


# --------------------------------------------------------------------------- in


@_handles("in")
def _in(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if not _effects_free(node.args[2:]):
        return None
    needle, haystack = _arg(node, 0), _arg(node, 1)
    if haystack.const and is_array(haystack.value):
        items = haystack.value
        code = gen.value(needle, scope)
        items_name = gen.module.constant(items)
        if items and all(type(item) is str for item in items):
            first, _, value = gen.typed(code)
            members = gen.module.constant(frozenset(items))
            expr = f"({value} in {members} if {first} is str else _sc({items_name}, {value}))"
        elif items and all(_is_number(item) for item in items):
            first, then, value = gen.typed(code)
            # NaN is never found by indexOf; leaving it out of the set keeps that true.
            members = gen.module.constant(frozenset(item for item in items if item == item))
            expr = (
                f"({value} in {members} if ({first} is int or {then} is float) "
                f"else _sc({items_name}, {value}))"
            )
        else:
            expr = f"_sc({items_name}, {code.expr})"
        return Code(expr, T_BOOL, code.lines)
    if haystack.const and type(haystack.value) is str and haystack.value:
        code = gen.value(needle, scope)
        text = gen.module.constant(haystack.value)
        first, _, value = gen.typed(code)
        return Code(
            f"(({value} if {first} is str else _ts({value})) in {text})", T_BOOL, code.lines
        )
    path = gen.module.constant(node.path)
    if needle.const and type(needle.value) is str:
        # A constant text in a looked-up string or list (tags, e-mail domains): _js_in's two
        # common branches inline; an empty string or anything else goes through _js_in.
        code = gen.value(haystack, scope)
        k = gen.module.constant(needle.value)
        first, then, value = gen.typed(code)
        return Code(
            f"({k} in {value} if ({first} is str and {value}) "
            f"else (_sc({value}, {k}) if {then} is list else _jsin({k}, {value}, {path})))",
            T_BOOL,
            code.lines,
        )
    lines, (a, b) = gen.sequence([gen.value(needle, scope), gen.value(haystack, scope)])
    return Code(f"_jsin({a}, {b}, {path})", T_BOOL, lines)


# --------------------------------------------------------------------------- arithmetic


@_handles("+")
def _add(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if not node.args:
        return Code("0.0", T_FLOAT, simple=True)
    codes = [
        Code(gen.module.constant(parse_float(arg.value)), T_FLOAT, simple=True)
        if arg.const
        else gen.parse_float(gen.value(arg, scope))
        for arg in node.args
    ]
    lines, exprs = gen.sequence(codes)
    expr = "0.0"
    for term in exprs:
        expr = f"({expr} + {term})"
    return Code(expr, T_FLOAT, lines)


@_handles("-")
def _minus(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    left, right = _arg(node, 0), _arg(node, 1)
    if len(node.args) < 2 or (right.const and right.value is UNDEFINED):
        if not _effects_free(node.args[2:]):
            return None
        code = gen.number(gen.value(left, scope))
        return Code(f"(-{code.expr})", T_FLOAT, code.lines)
    if not _effects_free(node.args[2:]):
        return None
    if right.const:
        a = gen.number(gen.value(left, scope))
        k = gen.module.constant(
            right.value if type(right.value) is float else to_number(right.value)
        )
        return Code(f"({a.expr} - {k})", T_FLOAT, a.lines)
    lines, (a_expr, b_expr) = gen.sequence([gen.value(left, scope), gen.value(right, scope)])
    return Code(f"_sub({a_expr}, {b_expr})", T_FLOAT, lines)


@_handles("*")
def _multiply(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if len(node.args) == 1:
        return gen.value(node.args[0], scope)  # a reduce without seed returns it unconverted
    codes = [
        Code(gen.module.constant(parse_float(arg.value)), T_FLOAT, simple=True)
        if arg.const
        else gen.parse_float(gen.value(arg, scope))
        for arg in node.args
    ]
    lines, exprs = gen.sequence(codes)
    if len(exprs) == 2:
        return Code(f"({exprs[0]} * {exprs[1]})", T_FLOAT, lines)
    expr = exprs[0]
    for term in exprs[1:]:
        # The closure sends the accumulator through parseFloat again: -0 becomes +0.
        expr = f"(({expr} + 0.0) * {term})"
    return Code(expr, T_FLOAT, lines)


@_handles("/")
def _divide(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if not _effects_free(node.args[2:]):
        return None
    left, right = _arg(node, 0), _arg(node, 1)
    a = gen.number(gen.value(left, scope))
    if right.const:
        divisor = right.value if type(right.value) is float else to_number(right.value)
        k = gen.module.constant(divisor)
        if divisor:  # nonzero or NaN: plain float division, exactly js_divide's first branch
            return Code(f"({a.expr} / {k})", T_FLOAT, a.lines)
        return Code(f"_div({a.expr}, {k})", T_FLOAT, a.lines)
    lines, (a_expr, b_expr) = gen.sequence([a, gen.number(gen.value(right, scope))])
    return Code(f"_div({a_expr}, {b_expr})", T_FLOAT, lines)


@_handles("%")
def _remainder(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    if not _effects_free(node.args[2:]):
        return None
    codes = [
        gen.number(gen.value(_arg(node, 0), scope)),
        gen.number(gen.value(_arg(node, 1), scope)),
    ]
    lines, (a, b) = gen.sequence(codes)
    return Code(f"_rem({a}, {b})", T_FLOAT, lines)


# --------------------------------------------------------------------------- iteration


def _iteration(
    gen: FunctionGen, node: Node, scope: Scope
) -> tuple[list[str], str, str, Scope, Code]:
    """The source as a local, a fresh item scope and the logic's code in that scope."""
    source_node = _arg(node, 0)
    segments = _empty_default_path(source_node)
    lines: list[str]
    if segments is not None:
        # A missing source and its empty default both iterate over nothing.
        lines, items = [], scope.raw(segments)
    else:
        lines, items = gen.materialize(gen.value(source_node, scope))
    item = gen.temp("_i")
    item_scope = Scope(gen.module, gen, item)
    logic = gen.value(_arg(node, 1), item_scope)
    return lines, items, item, item_scope, logic


def _empty_default_path(node: Node) -> tuple[str, ...] | None:
    """Path segments of ``{"var": path}`` / ``{"var": [path, []]}``, else None."""
    if node.kind != "op" or node.op != "var" or not 1 <= len(node.args) <= 2:
        return None
    key = node.args[0]
    if not key.const or _is_whole_data_key(key.value):
        return None
    if len(node.args) == 2:
        default = node.args[1]
        if not default.const:
            return None
        if default.value is not UNDEFINED and (
            type(default.value) not in (list, tuple) or default.value
        ):
            return None
    return tuple(to_string(key.value).split("."))


def _loop(
    gen: FunctionGen,
    node: Node,
    items: str,
    item: str,
    scope: Scope,
    body: list[str],
    require_items: bool = False,
) -> list[str]:
    condition = f"(type({items}) is list or _isarr({items}))"
    if require_items:
        condition = f"{condition} and {items}"
    # Bounded like the closures (limits.iterate): one call per loop, checking the array's
    # size and the deadline, and the deadline again every CHECK_EVERY items of long arrays.
    # What it raises sends the context to the closures, which raise the rule's error.
    bounded = f"_iter({items}, {gen.module.constant(node.op)}, {gen.module.constant(node.path)})"
    return [
        f"if {condition}:",
        *_indent([f"for {item} in {bounded}:", *_indent([*scope.prologue, *body])]),
    ]


@_handles("some", "none")
def _some_none(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    lines, items, item, item_scope, logic = _iteration(gen, node, scope)
    is_some = node.op == "some"
    target = gen.temp()
    test = gen.truth(logic)
    body = [*test.lines, f"if {test.expr}:", *_indent([f"{target} = {is_some}", "break"])]
    return Code(
        target,
        T_BOOL,
        [*lines, f"{target} = {not is_some}", *_loop(gen, node, items, item, item_scope, body)],
        simple=True,
    )


@_handles("all")
def _all(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    lines, items, item, item_scope, logic = _iteration(gen, node, scope)
    target = gen.temp()
    test = gen.truth(logic)
    body = [*test.lines, f"if not {test.expr}:", *_indent([f"{target} = False", "break"])]
    loop = _loop(gen, node, items, item, item_scope, body, require_items=True)
    # ``all`` of an empty or non-array source is false; otherwise true until an item fails.
    loop.insert(1, f"    {target} = True")
    return Code(target, T_BOOL, [*lines, f"{target} = False", *loop], simple=True)


@_handles("filter")
def _filter(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    lines, items, item, item_scope, logic = _iteration(gen, node, scope)
    target = gen.temp()
    test = gen.truth(logic)
    body = [*test.lines, f"if {test.expr}:", f"    {target}.append({item})"]
    return Code(
        target,
        T_LIST,
        [*lines, f"{target} = []", *_loop(gen, node, items, item, item_scope, body)],
        simple=True,
    )


@_handles("map")
def _map(gen: FunctionGen, node: Node, scope: Scope) -> Code | None:
    lines, items, item, item_scope, logic = _iteration(gen, node, scope)
    target = gen.temp()
    body = [*logic.lines, f"{target}.append({logic.expr})"]
    return Code(
        target,
        T_LIST,
        [*lines, f"{target} = []", *_loop(gen, node, items, item, item_scope, body)],
        simple=True,
    )


def with_true_test(node: Node, chain: int) -> Node:
    """``node`` with the first operand of its ``chain`` leading ``and`` levels set to ``true``.

    Used for rules reached through the index: their discriminating test is known to be true.
    """
    if chain == 0:
        return TRUE_NODE
    first = with_true_test(node.args[0], chain - 1)
    return node.replaced((first, *node.args[1:]))
