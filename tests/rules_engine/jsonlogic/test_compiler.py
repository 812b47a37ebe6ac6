"""Compiler behaviour: the Compiled object, errors and paths, limits, safety, custom functions."""

from __future__ import annotations

import copy
import datetime
import math
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from rules_engine.functions import FunctionRegistry, RegisteredFunction, registry
from rules_engine.jsonlogic import (
    UNDEFINED,
    Compiled,
    JsonLogicCompileError,
    JsonLogicError,
    JsonLogicRuntimeError,
    apply,
    compile,
    to_json,
    truthy,
)
from rules_engine.jsonlogic import compiler as compiler_module
from rules_engine.jsonlogic.operators import BUILTIN_OPERATORS

from .helpers import json_equal

TYPICAL: dict[str, Any] = {
    "and": [
        {">=": [{"var": "user.age"}, 18]},
        {"in": [{"var": "country"}, ["DE", "FR"]]},
    ]
}


@pytest.fixture
def functions() -> FunctionRegistry:
    """A private registry, so tests never leak functions into the project-wide one."""
    return FunctionRegistry()


# --------------------------------------------------------------------------- Compiled


def test_compiled_is_a_slotted_callable() -> None:
    compiled = compile(TYPICAL)
    assert isinstance(compiled, Compiled)
    assert not hasattr(compiled, "__dict__")
    assert compiled({"user": {"age": 30}, "country": "DE"}) is True
    assert compiled({"user": {"age": 30}, "country": "US"}) is False
    assert compiled({"user": {"age": 17}, "country": "DE"}) is False
    assert compiled() is False  # data defaults to None (null)


def test_compiled_keeps_the_source_rule_and_counts_nodes() -> None:
    compiled = compile(TYPICAL)
    assert compiled.rule == TYPICAL
    # and, [..], >=, [..], var, "user.age", 18, in, [..], var, "country", [..], "DE", "FR"
    assert compiled.node_count == 14
    assert compile(5).node_count == 1
    assert compile({"var": "a"}).node_count == 2
    assert compile({"var": ["a"]}).node_count == 3
    assert "Compiled" in repr(compiled)


def test_rule_is_compiled_once_and_never_reinterpreted() -> None:
    rule = copy.deepcopy(TYPICAL)
    compiled = compile(rule)
    data = {"user": {"age": 30}, "country": "FR"}
    assert compiled(data) is True
    # Mutating the source after compiling changes nothing: the closures do not look at it.
    rule["and"][0][">="][1] = 99
    rule["and"][1]["in"][1].append("US")
    rule["and"].append(False)
    assert compiled(data) is True
    assert compiled({"user": {"age": 30}, "country": "US"}) is False
    assert compiled.rule == TYPICAL  # .rule is a snapshot, too


def test_calling_does_not_walk_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile(TYPICAL)

    def no_walking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the compiler ran during evaluation")

    monkeypatch.setattr(compiler_module._Compiler, "node", no_walking)
    assert compiled({"user": {"age": 18}, "country": "DE"}) is True


def test_constant_results_are_fresh_copies() -> None:
    # Constants are folded at compile time; callers mutating a result must not corrupt the
    # compiled (and apply-cached) rule.
    for rule in (["a", "b"], {"if": [{"var": "x"}, [1, [2]], []]}, {"merge": [[1], [[2]]]}):
        compiled = compile(rule)
        first = compiled({"x": True})
        expected = copy.deepcopy(first)
        first.append("junk")
        if len(first) > 1 and isinstance(first[1], list):
            first[1].append("junk")
        assert compiled({"x": True}) == expected
    result = apply({"a": [1], "b": 2}, None)
    result["a"].append(3)
    assert apply({"a": [1], "b": 2}, None) == {"a": [1], "b": 2}


def test_constant_subtrees_are_folded() -> None:
    compiled = compile({"+": [{"*": [2, 3]}, {"-": [10, 4]}]})
    assert compiled(None) == 12.0
    assert compile({"if": [True, {"var": "a"}, {"var": "b"}]})({"a": 1, "b": 2}) == 1
    assert compile({"and": [True, {"var": "a"}]})({"a": 0}) == 0
    assert compile({"or": [False, {"var": "a"}, True]})({"a": 0}) is True


def test_short_circuit_and_laziness(functions: FunctionRegistry) -> None:
    calls: list[Any] = []

    def spy(*args: Any) -> str:
        calls.append(args)
        return "spied"

    functions.register("spy", spy)
    lazy_rules = [
        {"and": [{"var": "f"}, {"spy": [1]}]},
        {"or": [{"var": "t"}, {"spy": [2]}]},
        {"if": [{"var": "t"}, "then", {"spy": [3]}]},
        {"if": [{"var": "f"}, {"spy": [4]}, "else"]},
        {"all": [[1, 2], {"if": [{"==": [{"var": ""}, 1]}, False, {"spy": [5]}]}]},
        {"some": [[1, 2], {"if": [{"==": [{"var": ""}, 1]}, True, {"spy": [6]}]}]},
        {"none": [[1, 2], {"if": [{"==": [{"var": ""}, 1]}, True, {"spy": [7]}]}]},
    ]
    for rule in lazy_rules:
        compile(rule, functions=functions)({"t": True, "f": False})
    assert calls == []
    # json-logic-js evaluates the arguments of ordinary operators eagerly, even unused ones.
    assert compile({"!": [True, {"spy": [8]}]}, functions=functions)(None) is False
    assert calls == [(8,)]


def test_undefined_results_come_back_as_none() -> None:
    assert compile({"and": []})(None) is None
    assert compile({"or": []})({}) is None
    assert to_json(compile({"map": [[1], {"and": []}]})(None)) == [None]
    assert repr(UNDEFINED) == "UNDEFINED"
    assert not UNDEFINED
    assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED


def test_truthy_is_jsonlogic_truthiness() -> None:
    assert truthy({}) is True
    assert truthy([]) is False
    assert truthy("0") is True
    assert truthy(math.nan) is False
    assert truthy(-0.0) is False
    assert truthy(UNDEFINED) is False
    assert truthy(object()) is True


# --------------------------------------------------------------------------- errors


def test_error_carries_message_and_path() -> None:
    with pytest.raises(JsonLogicCompileError) as raised:
        compile({"and": [True, {"==": [{"nope": []}, 1]}]})
    error = raised.value
    assert isinstance(error, JsonLogicError)
    assert error.message == "unknown operator 'nope'"
    assert error.path == ("and", 1, "==", 0)
    assert error.json_path() == '$.and[1]["=="][0]'
    assert error.json_path(prefix="rule") == 'rule.and[1]["=="][0]'
    assert str(error) == "unknown operator 'nope' (at $.and[1][\"==\"][0])"


def test_json_path_rendering() -> None:
    error = JsonLogicError("x", ("a_1", "has space", 'quote"d', 3, "é", "9lives", ""))
    assert error.json_path() == '$.a_1["has space"]["quote\\"d"][3]["é"]["9lives"][""]'
    assert JsonLogicError("x").json_path() == "$"


def test_errors_pickle() -> None:
    error = JsonLogicRuntimeError("boom", ("a", 1))
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is JsonLogicRuntimeError
    assert (clone.message, clone.path) == ("boom", ("a", 1))


def test_unknown_operator_names_the_operator_and_path() -> None:
    with pytest.raises(JsonLogicCompileError, match="unknown operator 'frobnicate'") as raised:
        compile({"map": [{"var": "xs"}, {"frobnicate": {"var": ""}}]})
    assert raised.value.json_path() == "$.map[1]"


def test_unknown_operator_inside_literal_object_is_data() -> None:
    # A multi-key object is not logic, so whatever it holds is not compiled.
    assert compile({"a": {"frobnicate": 1}, "b": 2})(None) == {"a": {"frobnicate": 1}, "b": 2}


def test_arity_errors() -> None:
    with pytest.raises(JsonLogicCompileError, match=r"\* needs at least 1 argument") as raised:
        compile({"if": [True, {"*": []}]})
    assert raised.value.path == ("if", 1)
    with pytest.raises(JsonLogicCompileError, match="missing_some needs 2 arguments"):
        compile({"missing_some": [1]})


def test_runtime_errors_carry_the_node_path() -> None:
    compiled = compile({"if": [True, {"missing_some": [1, {"var": "keys"}]}]})
    with pytest.raises(JsonLogicRuntimeError) as raised:
        compiled({})
    assert raised.value.json_path() == "$.if[1].missing_some[1]"


def test_deep_data_is_a_runtime_error_not_a_crash() -> None:
    data: list[Any] = []
    for _ in range(100_000):
        data = [data]
    with pytest.raises(JsonLogicRuntimeError, match="data nests too deeply"):
        compile({"cat": [{"var": ""}]})(data)


# --------------------------------------------------------------------------- limits


def _nested_not(levels: int) -> Any:
    rule: Any = True
    for _ in range(levels):
        rule = {"!": rule}
    return rule


def test_depth_limit() -> None:
    assert compile(_nested_not(64))(None) is True
    with pytest.raises(JsonLogicCompileError) as raised:
        compile(_nested_not(65))
    assert raised.value.message == "rule nests deeper than 64 levels"
    assert raised.value.path == ("!",) * 64
    assert compile(_nested_not(10), max_depth=10)(None) is True
    with pytest.raises(JsonLogicCompileError, match="deeper than 9 levels"):
        compile(_nested_not(10), max_depth=9)


def test_depth_counts_every_container() -> None:
    # {"!": [x]} is two containers per level: the object and the argument array.
    rule: Any = True
    for _ in range(32):
        rule = {"!": [rule]}
    compile(rule)
    with pytest.raises(JsonLogicCompileError, match="deeper than 64"):
        compile({"!": [rule]})
    literal: Any = 1
    for _ in range(65):
        literal = [literal]
    with pytest.raises(JsonLogicCompileError, match="deeper than 64"):
        compile({"a": literal, "b": 1})


def test_absurd_nesting_is_a_compile_error() -> None:
    with pytest.raises(JsonLogicCompileError):
        compile(_nested_not(100_000))
    with pytest.raises(JsonLogicCompileError):
        compile(_nested_not(100_000), max_depth=1_000_000, max_nodes=10_000_000)


def test_node_limit() -> None:
    assert compile(list(range(4999))).node_count == 5000
    with pytest.raises(JsonLogicCompileError) as raised:
        compile(list(range(5000)))
    assert raised.value.message == "rule has more than 5000 nodes"
    assert raised.value.path == (4999,)
    with pytest.raises(JsonLogicCompileError, match="more than 10 nodes"):
        compile({"a": list(range(20)), "b": 1}, max_nodes=10)
    assert compile({"+": list(range(8))}, max_nodes=10)(None) == 28


# --------------------------------------------------------------------------- safety


class Trap:
    """A data object whose every Python hook fails: evaluation must never invoke one."""

    secret = "s3cr3t"

    def _trap(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Python hook of a data object was called")

    __bool__ = __len__ = __str__ = __eq__ = __lt__ = __gt__ = __le__ = __ge__ = _trap
    __float__ = __int__ = __index__ = __iter__ = __contains__ = __getitem__ = _trap
    __hash__ = None  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"attribute {name!r} of a data object was read")


def test_method_operator_is_refused_at_compile() -> None:
    for rule in (
        {"method": ["abc", "upper"]},
        {"method": [{"var": "obj"}, "__class__"]},
        {"if": [False, {"method": [{"var": ""}, "clear"]}]},
    ):
        with pytest.raises(JsonLogicCompileError, match="unknown operator 'method'"):
            compile(rule)


@pytest.mark.parametrize(
    "name", ["eval", "exec", "__import__", "getattr", "open", "import", "os.system", "count"]
)
def test_python_names_are_not_operators(name: str) -> None:
    with pytest.raises(JsonLogicCompileError, match="unknown operator"):
        compile({name: ["x"]})


def test_operator_surface_is_exactly_json_logic() -> None:
    assert frozenset(
        {
            "var", "missing", "missing_some", "if", "?:", "and", "or", "!", "!!",
            "==", "!=", "===", "!==", "<", "<=", ">", ">=", "in", "cat", "substr",
            "+", "-", "*", "/", "%", "min", "max", "merge",
            "map", "filter", "reduce", "all", "none", "some", "log",
        }
    ) == BUILTIN_OPERATORS  # fmt: skip


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("__class__", {"a": 1}),
        ("__dict__", {"a": 1}),
        ("items", {"a": 1}),
        ("keys", {"a": 1}),
        ("a.__len__", {"a": [1]}),
        ("a.__class__.__mro__", {"a": "text"}),
        ("a.upper", {"a": "text"}),
        ("a.real", {"a": 5}),
        ("a.append", {"a": []}),
        ("length", [1, 2]),  # a JavaScript property; deliberately not exposed
        ("obj.secret", {"obj": Trap()}),
        ("obj.__class__", {"obj": Trap()}),
        ("fn.__globals__", {"fn": len}),
    ],
)
def test_var_never_reaches_python_attributes(path: str, data: Any) -> None:
    assert compile({"var": path})(data) is None
    assert compile({"var": [path, "default"]})(data) == "default"
    assert compile({"missing": [path]})(data) == [path]


def test_operators_treat_foreign_objects_as_opaque() -> None:
    trap = Trap()
    data = {"obj": trap, "xs": [trap]}
    results = {
        "cat": compile({"cat": ["<", {"var": "obj"}, ">"]})(data),
        "truthy": compile({"!!": {"var": "obj"}})(data),
        "eq": compile({"==": [{"var": "obj"}, "x"]})(data),
        "strict": compile({"===": [{"var": "obj"}, {"var": "obj"}]})(data),
        "lt": compile({"<": [{"var": "obj"}, 1]})(data),
        "plus": compile({"+": [{"var": "obj"}, 1]})(data),
        "in": compile({"in": ["x", {"var": "obj"}]})(data),
        "in_array": compile({"in": [{"var": "obj"}, {"var": "xs"}]})(data),
        "in_const": compile({"in": [{"var": "obj"}, ["a", "b"]]})(data),
        "substr": compile({"substr": [{"var": "obj"}, 0, 8]})(data),
        "merge": compile({"merge": [{"var": "obj"}]})(data),
        "map": compile({"map": [{"var": "obj"}, 1]})(data),
        "min": compile({"min": [{"var": "obj"}, 1]})(data),
    }
    assert results["cat"] == "<[object Object]>"
    assert results["truthy"] is True
    assert results["eq"] is False
    assert results["strict"] is True
    assert results["lt"] is False
    assert math.isnan(results["plus"])
    assert results["in"] is False
    assert results["in_array"] is True
    assert results["in_const"] is False
    assert results["substr"] == "[object "
    assert results["merge"] == [trap]
    assert results["map"] == []
    assert math.isnan(results["min"])


def test_no_operator_can_call_data() -> None:
    called: list[str] = []

    def callback(*args: Any) -> None:
        called.append("called")

    data = {"f": callback, "obj": {"indexOf": callback}}
    for rule in (
        {"var": "f"},
        {"map": [[1], {"var": "f"}]},
        {"reduce": [[1], {"var": "accumulator"}, {"var": "f"}]},
        {"cat": [{"var": "f"}]},
        {"==": [{"var": "f"}, 1]},
    ):
        compile(rule)(data)
    # json-logic-js would call obj.indexOf; we refuse like its TypeError path instead.
    with pytest.raises(JsonLogicRuntimeError, match="indexOf is not a function"):
        compile({"in": ["x", {"var": "obj"}]})(data)
    assert called == []


# --------------------------------------------------------------------------- to_json


def test_to_json_policy() -> None:
    assert to_json(math.nan) is None
    assert to_json(math.inf) is None
    assert to_json(-math.inf) is None
    assert to_json(3.0) == 3 and type(to_json(3.0)) is int
    assert to_json(-0.0) == 0 and type(to_json(-0.0)) is int
    assert to_json(2.5) == 2.5
    assert type(to_json(2.0**60)) is float  # beyond 2**53 integral floats stay floats
    assert to_json(UNDEFINED) is None
    assert to_json((1, [math.nan, UNDEFINED])) == [1, [None, None]]
    assert to_json({"a": UNDEFINED, "b": -0.0, 1: True}) == {"b": 0, "1": True}
    assert json_equal(to_json([True, 1, "x", None]), [True, 1, "x", None])
    with pytest.raises(TypeError, match="not JSON data"):
        to_json(datetime.date(2024, 1, 1))


def test_division_by_zero_policy() -> None:
    assert compile({"/": [1, 0]})(None) == math.inf
    assert compile({"/": [-1, 0]})(None) == -math.inf
    assert math.isnan(compile({"/": [0, 0]})(None))
    assert compile({">": [{"/": [1, 0]}, 5]})(None) is True
    assert to_json(compile({"/": [1, 0]})(None)) is None


# --------------------------------------------------------------------------- apply


def test_apply_matches_compile_and_caches() -> None:
    data = {"user": {"age": 40}, "country": "FR"}
    assert apply(TYPICAL, data) is True
    assert apply(copy.deepcopy(TYPICAL), data) is True
    assert apply(17) == 17
    assert apply({"var": "a"}, {"a": [1]}) == [1]
    # Not JSON-serialisable rules still work, without the cache.
    when = datetime.date(2024, 1, 1)
    assert apply({"if": [True, when, None]}) is when


# --------------------------------------------------------------------------- functions


def test_registry_api(functions: FunctionRegistry) -> None:
    @functions.register("double", arity=1, description="Twice the number")
    def double(x: Any) -> Any:
        return x * 2

    assert double(2) == 4  # the decorator returns the function itself
    entry = functions.get("double")
    assert isinstance(entry, RegisteredFunction)
    assert (entry.name, entry.fn, entry.arity, entry.description) == (
        "double",
        double,
        1,
        "Twice the number",
    )
    functions.register("add", lambda a, b: a + b, arity=(2, None))
    assert functions.names() == ["add", "double"]
    assert "add" in functions
    assert len(functions) == 2
    assert functions.get("missing") is None
    generation = functions.generation
    functions.unregister("add")
    assert functions.generation == generation + 1
    assert functions.names() == ["double"]
    with pytest.raises(KeyError):
        functions.unregister("add")


@pytest.mark.parametrize("name", ["var", "if", "==", "map", "log", "?:"])
def test_registry_refuses_builtin_names(functions: FunctionRegistry, name: str) -> None:
    with pytest.raises(ValueError, match="built-in"):
        functions.register(name, len)


def test_registry_validation(functions: FunctionRegistry) -> None:
    functions.register("f", len)
    with pytest.raises(ValueError, match="already registered"):
        functions.register("f", len)
    with pytest.raises(ValueError, match="non-empty"):
        functions.register("", len)
    with pytest.raises(TypeError, match="callable"):
        functions.register("g", 42)  # type: ignore[call-overload]
    for bad in (-1, (2, 1), (1, 2, 3), (-1, None)):
        with pytest.raises(ValueError):
            functions.register("h", len, arity=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        functions.register("h", len, arity=True)


def test_functions_receive_evaluated_arguments(functions: FunctionRegistry) -> None:
    seen: list[tuple[Any, ...]] = []

    def record(*args: Any) -> str:
        seen.append(args)
        return "ok"

    functions.register("record", record)
    compiled = compile(
        {"record": [{"var": "a"}, {"+": [1, 2]}, "lit", [{"var": "b"}], {"and": []}]},
        functions=functions,
    )
    assert compiled({"a": {"x": 1}, "b": 2}) == "ok"
    assert compiled({"a": 5, "b": 6}) == "ok"
    # undefined never reaches a function; it arrives as None.
    assert seen == [({"x": 1}, 3.0, "lit", [2], None), (5, 3.0, "lit", [6], None)]


def test_function_results_take_part_in_the_rule(functions: FunctionRegistry) -> None:
    functions.register("double", lambda x: x * 2, arity=1)
    rule = {">": [{"double": {"var": "n"}}, 10]}
    compiled = compile(rule, functions=functions)
    assert compiled({"n": 6}) is True
    assert compiled({"n": 5}) is False


def test_function_arity_is_checked_at_compile(functions: FunctionRegistry) -> None:
    functions.register("one", lambda x: x, arity=1)
    functions.register("pair", lambda *a: a, arity=(1, 2))
    with pytest.raises(JsonLogicCompileError, match="takes 1 argument, got 2") as raised:
        compile({"and": [{"one": [1, 2]}]}, functions=functions)
    assert raised.value.json_path() == "$.and[0]"
    with pytest.raises(JsonLogicCompileError, match="takes 1 to 2 arguments, got 0"):
        compile({"pair": []}, functions=functions)
    assert compile({"pair": [1, 2]}, functions=functions)(None) == (1, 2)


def test_function_exceptions_become_runtime_errors(functions: FunctionRegistry) -> None:
    def explode(x: Any) -> Any:
        raise ValueError(f"bad {x}")

    functions.register("explode", explode)
    compiled = compile(
        {"if": [{"var": "go"}, {"explode": [{"var": "x"}]}, "safe"]}, functions=functions
    )
    assert compiled({"go": False}) == "safe"  # never evaluated, never raised
    with pytest.raises(JsonLogicRuntimeError) as raised:
        compiled({"go": True, "x": 7})
    assert raised.value.json_path() == "$.if[1]"
    assert "explode" in raised.value.message and "ValueError: bad 7" in raised.value.message
    assert isinstance(raised.value.__cause__, ValueError)


def test_functions_are_not_folded(functions: FunctionRegistry) -> None:
    counter = iter(range(100))
    functions.register("tick", lambda: next(counter), arity=0)
    compiled = compile({"+": [{"tick": []}, 0]}, functions=functions)
    assert [compiled(None) for _ in range(3)] == [0.0, 1.0, 2.0]


def test_unknown_without_registration(functions: FunctionRegistry) -> None:
    with pytest.raises(JsonLogicCompileError, match="unknown operator 'double'"):
        compile({"double": 2}, functions=functions)


@pytest.fixture
def registered_triple() -> Iterator[None]:
    registry.register("test_triple", lambda x: x * 3, arity=1)
    try:
        yield
    finally:
        registry.unregister("test_triple")


def test_default_registry_is_consulted(registered_triple: None) -> None:
    assert compile({"test_triple": 3})(None) == 9
    assert apply({"test_triple": {"var": "n"}}, {"n": 2}) == 6


def test_apply_cache_follows_the_registry() -> None:
    rule = {"test_quad": 2}
    registry.register("test_quad", lambda x: x * 4, arity=1)
    try:
        assert apply(rule) == 8
    finally:
        registry.unregister("test_quad")
    with pytest.raises(JsonLogicCompileError, match="unknown operator 'test_quad'"):
        apply(rule)
