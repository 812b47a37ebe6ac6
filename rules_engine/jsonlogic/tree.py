"""A typed tree of a compiled rule, for the rule-set code generator (:mod:`.codegen`).

:class:`TreeBuilder` is the closure compiler itself (so validation, limits, error paths and
constant folding are exactly those of :func:`~rules_engine.jsonlogic.compile`), recording for
every JSON node what it compiled to: a folded constant, an array, a built-in operation or a
custom function, together with the node's evaluator closure. The generator turns the nodes it
knows into inline Python and calls the recorded closure for every other node, so a node it does
not specialise still behaves exactly like the single-rule compiler.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from rules_engine.functions import FunctionRegistry

from .compiler import _Compiler
from .errors import Path
from .operators import Arg, Evaluator

__all__ = ["Node", "TreeBuilder", "build_tree"]

NodeKind = Literal["const", "array", "op", "func"]


class Node:
    """One compiled JSON node.

    ``kind`` is ``"const"`` (``value`` holds the folded value), ``"array"`` (``args`` are the
    items), ``"op"`` (a built-in operator ``op`` with ``args``) or ``"func"`` (a custom
    function). ``fn`` is the node's evaluator from the closure compiler; ``pure`` tells that
    evaluating it has no effects. Raises nothing.
    """

    __slots__ = ("args", "fn", "kind", "op", "path", "pure", "value")

    def __init__(
        self,
        kind: NodeKind,
        fn: Evaluator,
        *,
        value: Any = None,
        op: str = "",
        args: tuple[Node, ...] = (),
        path: Path = (),
        pure: bool = True,
    ) -> None:
        self.kind = kind
        self.fn = fn
        self.value = value
        self.op = op
        self.args = args
        self.path = path
        self.pure = pure

    @property
    def const(self) -> bool:
        """True for a folded constant."""
        return self.kind == "const"

    def replaced(self, args: tuple[Node, ...]) -> Node:
        """A copy with other arguments (the closure ``fn`` is kept). Raises nothing."""
        return Node(
            self.kind,
            self.fn,
            value=self.value,
            op=self.op,
            args=args,
            path=self.path,
            pure=self.pure,
        )

    def __repr__(self) -> str:
        if self.kind == "const":
            return f"Const({self.value!r})"
        return f"{self.kind}:{self.op}{list(self.args)!r}"


TRUE_NODE: Final = Node("const", Arg.constant(True).fn, value=True)


class TreeBuilder(_Compiler):
    """The closure compiler, also recording a :class:`Node` per compiled JSON node.

    Raises what :func:`~rules_engine.jsonlogic.compile` raises.
    """

    def __init__(self, max_depth: int, max_nodes: int, functions: FunctionRegistry) -> None:
        super().__init__(max_depth, max_nodes, functions)
        # The compiler compiles children (operator arguments, array items) through node()
        # while compiling their parent, so a stack of child lists rebuilds the tree.
        self._children: list[list[Node]] = [[]]

    def node(self, rule: Any, path: Path, depth: int) -> Arg:
        children: list[Node] = []
        self._children.append(children)
        try:
            arg = super().node(rule, path, depth)
        finally:
            self._children.pop()
        self._children[-1].append(self._record(rule, path, arg, tuple(children)))
        return arg

    def _record(self, rule: Any, path: Path, arg: Arg, children: tuple[Node, ...]) -> Node:
        if arg.const:
            return Node("const", arg.fn, value=arg.value, path=path)
        if isinstance(rule, dict):
            ((operator, _),) = rule.items()
            kind: NodeKind = "op" if operator in _builtin_names() else "func"
            return Node(kind, arg.fn, op=operator, args=children, path=path, pure=arg.pure)
        return Node("array", arg.fn, args=children, path=path, pure=arg.pure)

    def root(self) -> Node:
        """The node of the last compiled rule. Raises nothing."""
        return self._children[0][-1]


def _builtin_names() -> frozenset[str]:
    from .operators import BUILTIN_OPERATORS

    return BUILTIN_OPERATORS


def build_tree(
    rule: Any, *, max_depth: int, max_nodes: int, functions: FunctionRegistry
) -> tuple[Node, int]:
    """Compile ``rule`` and return its :class:`Node` tree and node count.

    Raises JsonLogicCompileError exactly like :func:`~rules_engine.jsonlogic.compile`.
    """
    builder = TreeBuilder(max_depth, max_nodes, functions)
    builder.compile_root(rule)
    return builder.root(), builder.nodes
