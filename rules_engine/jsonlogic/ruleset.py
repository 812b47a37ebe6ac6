"""Compile a whole entry point's rules into one evaluator: :func:`compile_ruleset`.

::

    from rules_engine.jsonlogic import compile_ruleset, RuleError

    ruleset = compile_ruleset([rule_a, rule_b, rule_c])
    ruleset(context)                             # [result_a, result_b, result_c]
    ruleset.evaluate(context, errors="collect")  # failing rules give a RuleError instead

Every result equals ``compile(rule)(context)`` for the same rule (json-logic-js 2.x semantics,
``undefined`` returned as None). What is gained:

* One generated Python function evaluates the rules, with every ``var`` path the rules read
  looked up once per context instead of once per use, constants folded and operators
  specialised for the shapes they have (see :mod:`.codegen`).
* An index skips rules that cannot match. A rule is *indexable* when its first evaluated test
  is ``==``, ``===`` or ``in`` of a ``var`` against constants (the rule itself, or the first
  operand of a leading ``and``), e.g. ``{"and": [{"==": [{"var": "event.type"}, "refund"]},
  ...]}``. Such a test yields exactly ``false`` when it fails, and so does the rule (``and``
  returns its first falsy operand), without evaluating anything else. Rules testing the same
  variable are grouped by their constants and reached through a dictionary from the
  variable's value (with json-logic-js's ``==`` coercions: ``"1"`` reaches the rules testing
  ``== 1``), so the work per context grows with the rules that can match, not with all of
  them. Unusual values (booleans, null, arrays, objects) run each group's own test instead.

Errors: ``ruleset(data)`` raises the JsonLogicRuntimeError of the first failing rule in order,
exactly like ``[compile(rule)(data) for rule in rules]``. ``ruleset.evaluate(data,
errors="collect")`` returns a :class:`RuleError` in the place of each failing rule and the
values of all others (per-rule isolation for the engine). When anything fails, the rule set
re-evaluates that context rule by rule with the single-rule closures, which is where errors
come from; effects of rules evaluated before the failure (``log`` lines, custom function calls)
may therefore happen twice, and with the index, rules run in index order rather than in list
order (only ``log`` output can tell). Custom functions must be pure anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from rules_engine.functions import FunctionRegistry
from rules_engine.functions import registry as default_registry

from .codegen import (
    FunctionGen,
    Module,
    _is_scalar,
    check_source,
    dedupe_key,
    with_true_test,
)
from .compiler import DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES
from .errors import JsonLogicCompileError, JsonLogicRuntimeError
from .operators import _is_whole_data_key, _missing_keys
from .tree import Node, build_tree
from .values import UNDEFINED, string_to_number, to_string

__all__ = ["CompiledRuleset", "RuleError", "compile_ruleset"]

# Rules per generated function: keeps each function a size CPython compiles quickly.
CHUNK: Final = 200
# A variable is indexed once this many rules are discriminated by it: below that, testing the
# rules inline costs less than the dispatch (measured on the shared workload's 2-4 rule groups).
MIN_INDEXED: Final = 6
_SAFE_INT: Final = 2**53
_ITERATORS: Final = frozenset({"map", "filter", "reduce", "all", "none", "some"})

Errors = Literal["raise", "collect"]
# What CPython's compile() raises for code beyond its limits (nesting depth, size).
_REFUSED: Final = (SyntaxError, RecursionError, MemoryError, ValueError, OverflowError)


@dataclass(frozen=True, slots=True)
class RuleError:
    """The failure of one rule in an ``errors="collect"`` evaluation.

    ``index`` is the rule's position in the rule set, ``error`` what ``compile(rule)(data)``
    raised (its ``path`` points into the rule). Raises nothing.
    """

    index: int
    error: JsonLogicRuntimeError

    def __str__(self) -> str:
        return f"rule {self.index}: {self.error}"


class CompiledRuleset:
    """A compiled rule set: call it with a context to get one result per rule, in order.

    Attributes: ``reads`` (the dotted ``var`` paths the rules read from the context, including
    ``missing`` keys and array sources of iterations), ``reads_complete`` (False when some rule
    computes its paths or reads the whole context, so ``reads`` is not exhaustive),
    ``indexed`` (per indexed variable path, how many rules it discriminates), ``fallbacks``
    (contexts that were re-evaluated rule by rule because something raised).
    """

    __slots__ = (
        "_closures",
        "_evaluate",
        "_lock",
        "_roots",
        "fallbacks",
        "indexed",
        "reads",
        "reads_by_rule",
        "reads_complete",
        "source",
    )

    def __init__(
        self,
        evaluate: Callable[[Any], list[Any]],
        closures: Sequence[Callable[[Any], Any]],
        reads_by_rule: Sequence[frozenset[str]],
        reads_complete: bool,
        indexed: dict[str, int],
        source: str | None,
    ) -> None:
        self._evaluate = evaluate
        self._closures = tuple(closures)
        self._lock = threading.Lock()
        self.fallbacks = 0
        self.reads_by_rule = tuple(reads_by_rule)
        self.reads: tuple[str, ...] = tuple(sorted(frozenset[str]().union(*reads_by_rule)))
        self.reads_complete = reads_complete
        self._roots = frozenset(path.split(".", 1)[0] for path in self.reads)
        self.indexed = dict(indexed)
        self.source = source

    def __len__(self) -> int:
        return len(self._closures)

    def may_read(self, key: str) -> bool:
        """Whether some rule may read the context's top-level ``key`` (e.g. ``"$now"``).

        True when a rule reads a path starting with it, or when ``reads`` is not complete.
        Raises nothing.
        """
        return key in self._roots or not self.reads_complete

    def __call__(self, data: Any = None) -> list[Any]:
        """Evaluate every rule against ``data``; one result per rule, in order.

        Raises JsonLogicRuntimeError of the first failing rule (as the single-rule path).
        """
        try:
            return self._evaluate(data)
        except Exception:  # noqa: BLE001  # any failure: the closures tell what really happens
            return self._reference(data, collect=False)

    def evaluate(self, data: Any = None, *, errors: Errors = "raise") -> list[Any]:
        """Evaluate every rule against ``data``.

        ``errors="raise"`` is ``self(data)``; ``errors="collect"`` puts a :class:`RuleError`
        in the place of each rule that raised and never raises JsonLogicRuntimeError.
        """
        if errors == "raise":
            return self(data)
        if errors != "collect":
            raise ValueError(f"errors must be 'raise' or 'collect', not {errors!r}")
        try:
            return self._evaluate(data)
        except Exception:  # noqa: BLE001  # see __call__
            return self._reference(data, collect=True)

    def _reference(self, data: Any, *, collect: bool) -> list[Any]:
        """Rule by rule with the single-rule closures: the semantics, and where errors come from."""
        with self._lock:
            self.fallbacks += 1
        results: list[Any] = []
        for index, closure in enumerate(self._closures):
            try:
                value = closure(data)
            except RecursionError as exc:  # only absurdly deep *data* can get here
                error = JsonLogicRuntimeError("data nests too deeply to evaluate", ())
                error.__cause__ = exc
                if not collect:
                    raise error from exc
                results.append(RuleError(index, error))
                continue
            except JsonLogicRuntimeError as exc:
                if not collect:
                    raise
                results.append(RuleError(index, exc))
                continue
            results.append(None if value is UNDEFINED else value)
        return results

    def __repr__(self) -> str:
        return f"<CompiledRuleset of {len(self)} rules, indexed by {sorted(self.indexed)}>"


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True, slots=True)
class _Test:
    """An indexable first test of a rule: ``var`` (``op``) constants."""

    key: tuple[Any, ...]  # identifies the variable: path segments and default
    segments: tuple[str, ...]
    default: Any
    op: str  # "==", "===" or "in"
    constants: tuple[Any, ...]
    signature: tuple[Any, ...]  # equal signatures: rules that match exactly the same contexts
    node: Node  # the test itself (its closure is the index's slow path)
    chain: int  # how many leading ``and`` levels lead to it


def _indexable_constant(value: Any) -> bool:
    t = type(value)
    if t is int:
        return -_SAFE_INT <= value <= _SAFE_INT
    return t is str or t is float or t is bool or value is None


def _plain_var(node: Node) -> tuple[tuple[str, ...], Any] | None:
    """(segments, default) of ``{"var": path}`` / ``{"var": [path, scalar]}``, else None."""
    if node.kind != "op" or node.op != "var" or not 1 <= len(node.args) <= 2:
        return None
    key = node.args[0]
    if not key.const or _is_whole_data_key(key.value):
        return None
    default = node.args[1] if len(node.args) == 2 else None
    if default is None:
        value = None
    elif default.const and _is_scalar(default.value):
        value = None if default.value is UNDEFINED else default.value
    else:
        return None
    return tuple(to_string(key.value).split(".")), value


def _find_test(root: Node) -> _Test | None:
    """The rule's discriminating test, when its first evaluated node is one."""
    node = root
    chain = 0
    while node.kind == "op" and node.op == "and" and node.args:
        node = node.args[0]
        chain += 1
    if node.kind != "op" or node.op not in ("==", "===", "in") or len(node.args) != 2:
        return None
    left, right = node.args
    if node.op == "in":
        var = _plain_var(left)
        if var is None or not right.const or type(right.value) not in (list, tuple):
            return None
        constants = tuple(right.value)
    else:
        if left.const:
            left, right = right, left
        var = _plain_var(left)
        if var is None or not right.const:
            return None
        constants = (right.value,)
    if not all(_indexable_constant(value) for value in constants):
        return None
    segments, default = var
    tagged = frozenset(dedupe_key(value) for value in constants)
    key = (segments, dedupe_key(default))
    return _Test(key, segments, default, node.op, constants, (key, node.op, tagged), node, chain)


def _keys(test: _Test) -> tuple[set[str], set[float], set[int | float]]:
    """The values reaching the rule: (exact strings, numbers a string must convert to for a
    loose match, exact numbers). Mirrors loose_equal / strict_equal / strict_contains."""
    strings: set[str] = set()
    loose_numbers: set[float] = set()
    numbers: set[int | float] = set()
    for value in test.constants:
        t = type(value)
        if t is str:
            strings.add(value)
            if test.op == "==":
                converted = string_to_number(value)
                if converted == converted:
                    numbers.add(converted)
        elif t is bool:
            if test.op == "==":
                loose_numbers.add(1.0 if value else 0.0)
                numbers.add(1.0 if value else 0.0)
        elif (t is int or t is float) and value == value:
            numbers.add(value)
            if test.op == "==":
                loose_numbers.add(value)
    return strings, loose_numbers, numbers


@dataclass
class _Group:
    """Rules with the same discriminating test signature."""

    test: _Test
    rules: list[int] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)


@dataclass
class _Index:
    """All groups discriminated by one variable, and the lookup tables to reach them."""

    segments: tuple[str, ...]
    default: Any
    groups: list[_Group] = field(default_factory=list)


def _plan(
    trees: Sequence[Node], use_index: bool, min_indexed: int
) -> tuple[list[int], list[_Index], dict[int, int]]:
    """Split the rules into always-evaluated ones and indexes; also each indexed rule's chain."""
    tests = [_find_test(tree) if use_index else None for tree in trees]
    counts: dict[tuple[Any, ...], int] = {}
    for test in tests:
        if test is not None:
            counts[test.key] = counts.get(test.key, 0) + 1
    always: list[int] = []
    indexes: dict[tuple[Any, ...], _Index] = {}
    groups: dict[tuple[Any, ...], _Group] = {}
    chains: dict[int, int] = {}
    for position, test in enumerate(tests):
        if test is None or counts[test.key] < min_indexed:
            always.append(position)
            continue
        index = indexes.get(test.key)
        if index is None:
            index = indexes[test.key] = _Index(test.segments, test.default)
        group = groups.get(test.signature)
        if group is None:
            group = groups[test.signature] = _Group(test)
            index.groups.append(group)
        group.rules.append(position)
        chains[position] = test.chain
    return always, list(indexes.values()), chains


# --------------------------------------------------------------------------- generation


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Assembler:
    """Writes the module: main function, extra always-run chunks, group functions."""

    def __init__(self, trees: Sequence[Node], chains: dict[int, int]) -> None:
        self.trees = trees
        self.chains = chains
        self.module = Module()
        self.sources: dict[str, list[str]] = {}
        self.rules_of: dict[str, list[int]] = {}
        self.source = ""
        self._main_args: tuple[Any, ...] = ()

    def rule_node(self, position: int) -> Node:
        chain = self.chains.get(position)
        tree = self.trees[position]
        return tree if chain is None else with_true_test(tree, chain)

    def rule_lines(
        self, gen: FunctionGen, position: int, node: Node, target: str, closures: bool
    ) -> list[str]:
        code = None
        if not closures:
            try:
                code = gen.result(node, gen.root)
            except RecursionError:
                code = None
        if code is None:
            name = self.module.bind("_f", self.trees[position].fn)
            value = gen.temp()
            return [f"{value} = {name}(data)", f"{target} = None if {value} is _U else {value}"]
        return [*code.lines, f"{target} = {code.expr}"]

    def store_function(self, positions: Sequence[int], closures: bool = False) -> str:
        """``def _gN(data, out)`` evaluating ``positions`` into ``out``."""
        name = self.module.name("_g")
        self._store(name, positions, closures)
        return name

    def _store(self, name: str, positions: Sequence[int], closures: bool) -> None:
        gen = FunctionGen(self.module)
        nodes = [self.rule_node(position) for position in positions]
        gen.prepare(nodes)
        body: list[str] = []
        for position, node in zip(positions, nodes, strict=True):
            body.extend(self.rule_lines(gen, position, node, f"out[{position}]", closures))
        self.sources[name] = [
            f"def {name}(data, out):",
            *_indent([*gen.root.prologue, *body]),
        ]
        self.rules_of[name] = list(positions)

    def main(
        self,
        first: Sequence[int],
        extra: Sequence[str],
        indexes: Sequence[_Index],
        total: int,
        skipped: set[int],
        closures: bool = False,
    ) -> None:
        gen = FunctionGen(self.module)
        nodes = [self.rule_node(position) for position in first]
        gen.prepare(nodes)
        body: list[str] = []
        for position, node in zip(first, nodes, strict=True):
            body.extend(self.rule_lines(gen, position, node, f"_r{position}", closures))
        if len(first) == total:
            body.append("out = [" + ", ".join(f"_r{p}" for p in first) + "]")
        else:
            # Indexed rules start as false (their failed test's value); the rest is filled in.
            template = tuple(False if p in skipped else None for p in range(total))
            body.append(f"out = list({self.module.constant(template)})")
            body.extend(f"out[{p}] = _r{p}" for p in first)
        body.extend(f"{name}(data, out)" for name in extra)
        for index in indexes:
            body.extend(self.dispatch(gen, index))
        body.append("return out")
        self.sources["_evaluate"] = [
            "def _evaluate(data):",
            *_indent([*gen.root.prologue, *body]),
        ]
        self.rules_of["_evaluate"] = list(first)
        self._main_args = (first, extra, indexes, total, skipped)

    def dispatch(self, gen: FunctionGen, index: _Index) -> list[str]:
        """Statements reaching the groups whose test the variable's value passes."""
        strings: dict[Any, list[str]] = {}
        loose: dict[Any, list[str]] = {}
        numbers: dict[Any, list[str]] = {}
        slow: list[tuple[Callable[[Any], Any], str]] = []
        for group in index.groups:
            string_keys, loose_keys, number_keys = _keys(group.test)
            tables: tuple[tuple[dict[Any, list[str]], set[Any]], ...] = (
                (strings, string_keys),
                (loose, loose_keys),
                (numbers, number_keys),
            )
            for table, keys in tables:
                for key in keys:
                    table.setdefault(key, []).extend(group.functions)
            slow.extend((group.test.node.fn, function) for function in group.functions)
        value = gen.root.defaulted(index.segments, index.default)
        lines: list[str] = [f"_dt = type({value})", "if _dt is str:"]
        if strings:
            name = self.module.bind("_x", strings)
            lines.append(f"    _dg = {name}.get({value})")
        else:
            lines.append("    _dg = None")
        if loose:
            name = self.module.bind("_x", loose)
            lines += [
                f"    _dl = {name}.get(_s2n({value}))",
                "    if _dl is not None:",
                "        _dg = _dl if _dg is None else _union(_dg, _dl)",
            ]
        lines.append(f"elif _dt is float or (_dt is int and -_SAFE <= {value} <= _SAFE):")
        if numbers:
            name = self.module.bind("_x", numbers)
            lines.append(f"    _dg = {name}.get({value})")
        else:
            lines.append("    _dg = None")
        lines += [
            "else:",
            f"    _dg = _slow({self.module.bind('_x', tuple(slow))}, data)",
            "if _dg:",
            "    for _dx in _dg:",
            "        _dx(data, out)",
        ]
        # The tables hold function names until the module exists; see resolve().
        return lines

    def _compile(self, name: str) -> Any:
        source = "\n".join(self.sources[name]) + "\n"
        check_source(source)
        return compile(source, "<jsonlogic ruleset>", "exec")

    def resolve(self) -> Callable[[Any], list[Any]]:
        """Compile the module (regenerating with closures any function CPython refuses).

        Functions are compiled one at a time: compiling the whole text at once needs memory
        for its entire syntax tree, which the allocator then keeps (tens of MB at 1,000 rules).
        """
        namespace = self.module.namespace
        for name in list(self.sources):
            try:
                code = self._compile(name)
            except _REFUSED:
                # Beyond CPython's limits (nesting, size): evaluate these rules with closures.
                if name == "_evaluate":
                    first, extra, indexes, total, skipped = self._main_args
                    self.main(first, extra, indexes, total, skipped, closures=True)
                else:
                    self._store(name, self.rules_of[name], closures=True)
                code = self._compile(name)
            exec(code, namespace)  # noqa: S102  # generated by us, checked by check_source
        self.source = "\n".join("\n".join(lines) for lines in self.sources.values()) + "\n"
        functions = {name: namespace[name] for name in self.sources}
        for key, table in list(namespace.items()):
            if not key.startswith("_x"):
                continue
            if isinstance(table, dict):
                namespace[key] = {k: tuple(functions[n] for n in v) for k, v in table.items()}
            elif isinstance(table, tuple):
                namespace[key] = tuple((test, functions[n]) for test, n in table)
        evaluate: Callable[[Any], list[Any]] = namespace["_evaluate"]
        return evaluate


def _indent(lines: Iterable[str]) -> list[str]:
    return ["    " + line for line in lines]


# --------------------------------------------------------------------------- reads


def _reads(node: Node, paths: set[str], scoped: bool = False) -> bool:
    """Add the root-data paths ``node`` reads to ``paths``; False if they can't all be known."""
    if node.kind == "const":
        return True
    complete = True
    if node.kind == "op" and node.op in _ITERATORS:
        for position, arg in enumerate(node.args):
            # The logic (argument 1) reads the items, not the rule data.
            complete &= _reads(arg, paths, scoped or position == 1)
        return complete
    for arg in node.args:
        complete &= _reads(arg, paths, scoped)
    if scoped or node.kind != "op":
        return complete
    if node.op == "var":
        key = node.args[0] if node.args else None
        if key is None or not key.const or _is_whole_data_key(key.value):
            return False
        paths.add(to_string(key.value))
    elif node.op == "missing":
        if not all(arg.const for arg in node.args):
            return False
        for key in _missing_keys([arg.value for arg in node.args]):
            if not _is_scalar(key) or _is_whole_data_key(key):
                return False
            paths.add(to_string(key))
    elif node.op == "missing_some":
        options = node.args[1] if len(node.args) > 1 else None
        if options is None or not options.const:
            return False
        values = options.value if type(options.value) in (list, tuple) else [options.value]
        for key in _missing_keys(values):
            if not _is_scalar(key) or _is_whole_data_key(key):
                return False
            paths.add(to_string(key))
    return complete


# --------------------------------------------------------------------------- entry point


def compile_ruleset(
    rules: Iterable[Any],
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    functions: FunctionRegistry | None = None,
    index: bool = True,
    min_indexed: int = MIN_INDEXED,
    keep_source: bool = False,
) -> CompiledRuleset:
    """Compile JSONLogic ``rules`` (parsed JSON) into one :class:`CompiledRuleset`.

    ``max_depth``/``max_nodes``/``functions`` apply to each rule as in
    :func:`~rules_engine.jsonlogic.compile`. ``index=False`` evaluates every rule (for
    measurements and tests); a variable is indexed when at least ``min_indexed`` rules start
    with a test on it (fewer are cheaper to test inline). ``keep_source`` keeps the generated
    Python text on ``.source`` (for debugging). Raises JsonLogicCompileError for the first
    rule that does not compile, its path prefixed with the rule's position (``$[3].and[0]``).
    """
    registry = default_registry if functions is None else functions
    trees: list[Node] = []
    for position, rule in enumerate(rules):
        try:
            tree, _ = build_tree(rule, max_depth=max_depth, max_nodes=max_nodes, functions=registry)
        except JsonLogicCompileError as exc:
            raise JsonLogicCompileError(exc.message, (position, *exc.path)) from exc
        trees.append(tree)

    always, indexes, chains = _plan(trees, index, min_indexed)
    assembler = _Assembler(trees, chains)
    for index_ in indexes:
        for group in index_.groups:
            group.functions = [
                assembler.store_function(chunk) for chunk in _chunks(group.rules, CHUNK)
            ]
    first, rest = always[:CHUNK], always[CHUNK:]
    extra = [assembler.store_function(chunk) for chunk in _chunks(rest, CHUNK)]
    skipped = {position for index_ in indexes for g in index_.groups for position in g.rules}
    assembler.main(first, extra, indexes, len(trees), skipped)
    evaluate = assembler.resolve()

    reads: list[frozenset[str]] = []
    complete = True
    for tree in trees:
        paths: set[str] = set()
        complete &= _reads(tree, paths)
        reads.append(frozenset(paths))
    indexed = {
        ".".join(index_.segments): sum(len(g.rules) for g in index_.groups) for index_ in indexes
    }
    return CompiledRuleset(
        evaluate,
        [tree.fn for tree in trees],
        reads,
        complete,
        indexed,
        assembler.source if keep_source else None,
    )
