"""Builders for the built-in JSONLogic operators, with json-logic-js 2.x semantics.

Each builder receives the operator's compiled arguments (:class:`Arg`) and the node's path and
returns an *evaluator*: a closure ``evaluator(data) -> value``. Builders look at which
arguments are constants and how many there are, and return a closure specialised for that
shape, so evaluation does no dispatching on the rule's structure at all.

Argument conventions copied from json-logic-js: a missing argument is ``undefined``
(:data:`UNDEFINED`); arguments an operator ignores are still evaluated (for their effects,
e.g. a custom function that raises), except where json-logic-js itself never evaluates them
(the lazy ``if``/``and``/``or`` and the iteration operators).

Builders raise nothing. Evaluators raise nothing either, except JsonLogicRuntimeError where
json-logic-js itself throws a TypeError for the data at hand (``missing_some`` given null
keys, ``in`` on an object with an ``indexOf`` key); those carry the argument's path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .errors import JsonLogicLimitError, JsonLogicRuntimeError, Path, render_json_path
from .limits import DEADLINE, LIMITS, budget_error, check_items, iterate
from .limits import _clock as _limits_clock
from .values import (
    INF,
    K_STR,
    NAN,
    UNDEFINED,
    is_array,
    js_divide,
    js_remainder,
    js_truthy,
    kind,
    less_equal,
    less_than,
    loose_equal,
    parse_float,
    strict_contains,
    strict_equal,
    to_integer_or_infinity,
    to_number,
    to_primitive,
    to_string,
    truthy,
    utf16_length,
    utf16_slice,
)

Evaluator = Callable[[Any], Any]

_LOG: Final = logging.getLogger("rules_engine.jsonlogic")


# --------------------------------------------------------------------------- arguments


def copy_value(value: Any) -> Any:
    """Deep-copy JSON containers (lists, tuples as lists, dicts); other values are shared.

    Constants of a compiled rule are handed out as copies so a caller mutating a result can
    never corrupt the compiled (and cached) rule. Raises nothing.
    """
    t = type(value)
    if t is list or t is tuple:
        return [copy_value(item) for item in value]
    if t is dict:
        return {key: copy_value(item) for key, item in value.items()}
    return value


def const_evaluator(value: Any) -> Evaluator:
    """Return an evaluator that yields ``value`` (a fresh copy for containers). Raises nothing."""
    if type(value) in (list, tuple, dict):
        return lambda _data: copy_value(value)
    return lambda _data: value


class Arg:
    """A compiled rule node: its evaluator plus what the compiler knows about it.

    ``const`` means the value is known at compile time (``value``); builders may read
    ``value`` directly but must never return it (or a piece of it) to the caller.
    ``pure`` means evaluating it has no effects (no ``log``, no custom function), so it may be
    evaluated at compile time. Raises nothing.
    """

    __slots__ = ("const", "fn", "pure", "value")

    def __init__(self, fn: Evaluator, *, const: bool, value: Any = None, pure: bool) -> None:
        self.fn = fn
        self.const = const
        self.value = value
        self.pure = pure

    @classmethod
    def constant(cls, value: Any) -> Arg:
        """Build a constant argument. Raises nothing."""
        return cls(const_evaluator(value), const=True, value=value, pure=True)


UNDEFINED_ARG: Final = Arg.constant(UNDEFINED)
NULL_ARG: Final = Arg.constant(None)


def _arg(args: Sequence[Arg], index: int) -> Arg:
    return args[index] if index < len(args) else UNDEFINED_ARG


def _with_effects(evaluator: Evaluator, extra: Sequence[Arg]) -> Evaluator:
    """Also evaluate arguments the operator ignores, as json-logic-js does (eagerly)."""
    effects = tuple(arg.fn for arg in extra if not arg.const)
    if not effects:
        return evaluator

    def evaluate(data: Any) -> Any:
        result = evaluator(data)
        for effect in effects:
            effect(data)
        return result

    return evaluate


def _is_number(value: Any) -> bool:
    t = type(value)
    return t is int or t is float


def _is_scalar(value: Any) -> bool:
    return type(value) not in (list, tuple, dict)


# --------------------------------------------------------------------------- var & missing


def _index_other(container: Any, segment: str) -> Any:
    """``container[segment]`` for a non-dict JSON value (JavaScript property lookup).

    Arrays and strings are indexed only by canonical non-negative integers ("1", not "01" or
    "-1"); dicts by key. Nothing else is ever looked into: no attributes, no ``length``.
    """
    if is_array(container) or kind(container) == K_STR:
        if not (segment.isascii() and segment.isdigit()) or (segment[0] == "0" and segment != "0"):
            return UNDEFINED
        index = int(segment)
        if kind(container) == K_STR:
            text = str.__str__(container)
            if index >= utf16_length(text):
                return UNDEFINED
            return utf16_slice(text, index, index + 1)
        if index >= len(container):
            return UNDEFINED
        return container[index]
    if isinstance(container, dict):
        return dict.get(container, segment, UNDEFINED)
    return UNDEFINED


def walk(data: Any, segments: Sequence[str], default: Any) -> Any:
    """Follow a pre-split ``var`` path through data; ``default`` when anything is missing."""
    for segment in segments:
        if type(data) is dict:
            data = data.get(segment, UNDEFINED)
        elif data is None or data is UNDEFINED:
            return default
        else:
            data = _index_other(data, segment)
        if data is UNDEFINED:
            return default
    return data


def _is_whole_data_key(key: Any) -> bool:
    """``var`` of undefined, null or "" returns the whole data."""
    return key is None or key is UNDEFINED or (kind(key) == K_STR and key == "")


def var_lookup(data: Any, key: Any, default: Any) -> Any:
    """json-logic-js ``var`` with an evaluated key and default. Raises nothing."""
    if _is_whole_data_key(key):
        return data
    return walk(data, to_string(key).split("."), default)


def _var_of_key(data: Any, key: Any) -> Any:
    """``{"var": key}`` for an evaluated key, as ``missing`` uses it (arrays give a default)."""
    if is_array(key):
        name = key[0] if len(key) > 0 else UNDEFINED
        default = key[1] if len(key) > 1 else UNDEFINED
        return var_lookup(data, name, None if default is UNDEFINED else default)
    return var_lookup(data, key, None)


def _is_missing_value(value: Any) -> bool:
    return value is None or (kind(value) == K_STR and value == "")


def _missing(data: Any, keys: Sequence[Any]) -> list[Any]:
    return [key for key in keys if _is_missing_value(_var_of_key(data, key))]


def _missing_keys(values: Sequence[Any]) -> Sequence[Any]:
    """``missing`` takes its keys from a first array argument, else from all arguments."""
    if len(values) > 0 and is_array(values[0]):
        return values[0]
    return values


def build_var(args: Sequence[Arg], path: Path) -> Evaluator:
    """``var``: dotted-path lookup with an optional default (used only when missing)."""
    key_arg = _arg(args, 0)
    default_arg = _arg(args, 1)
    extra = args[2:]
    if default_arg.const and _is_scalar(default_arg.value):
        default_const = None if default_arg.value is UNDEFINED else default_arg.value
        default_fn: Evaluator | None = None
    else:
        default_const = None
        default_fn = default_arg.fn

    if not key_arg.const:
        key_fn = key_arg.fn
        if default_fn is None:
            evaluator: Evaluator = lambda data: var_lookup(data, key_fn(data), default_const)  # noqa: E731
        else:
            dynamic_default = default_fn

            def evaluator(data: Any) -> Any:
                key = key_fn(data)
                default = dynamic_default(data)
                return var_lookup(data, key, None if default is UNDEFINED else default)

        return _with_effects(evaluator, extra)

    if _is_whole_data_key(key_arg.value):
        # The default is evaluated (json-logic-js evaluates every argument) but never used.
        return _with_effects(lambda data: data, args[1:])

    segments = tuple(to_string(key_arg.value).split("."))
    if default_fn is not None:
        dynamic = default_fn

        def var_dynamic_default(data: Any) -> Any:
            default = dynamic(data)
            return walk(data, segments, None if default is UNDEFINED else default)

        return _with_effects(var_dynamic_default, extra)
    return _with_effects(_var_const(segments, default_const), extra)


def _var_const(segments: tuple[str, ...], default: Any) -> Evaluator:
    """Specialise a constant ``var`` path: dicts all the way down is the hot path."""
    if len(segments) == 1:
        (key,) = segments

        def var1(data: Any) -> Any:
            if type(data) is dict:
                value = data.get(key, UNDEFINED)
                return default if value is UNDEFINED else value
            return walk(data, segments, default)

        return var1
    if len(segments) == 2:
        first, second = segments

        def var2(data: Any) -> Any:
            if type(data) is dict:
                inner = data.get(first, UNDEFINED)
                if type(inner) is dict:
                    value = inner.get(second, UNDEFINED)
                    return default if value is UNDEFINED else value
            return walk(data, segments, default)

        return var2

    def var_n(data: Any) -> Any:
        return walk(data, segments, default)

    return var_n


def build_missing(args: Sequence[Arg], path: Path) -> Evaluator:
    """``missing``: the keys whose value is null, "" or absent, in order."""
    if all(arg.const for arg in args):
        keys = _missing_keys([arg.value for arg in args])
        if all(_is_scalar(key) for key in keys):
            plan = tuple(
                (key, None if _is_whole_data_key(key) else tuple(to_string(key).split(".")))
                for key in keys
            )

            def missing_const(data: Any) -> list[Any]:
                result = []
                for key, segments in plan:
                    value = data if segments is None else walk(data, segments, None)
                    if value is None or (kind(value) == K_STR and value == ""):
                        result.append(key)
                return result

            return missing_const
    fns = tuple(arg.fn for arg in args)
    return lambda data: _missing(data, _missing_keys([fn(data) for fn in fns]))


def _options_length(options: Any) -> float:
    """JavaScript ``options.length`` for whatever ``missing_some`` was given."""
    if is_array(options):
        return float(len(options))
    if kind(options) == K_STR:
        return float(utf16_length(str.__str__(options)))
    if isinstance(options, dict):
        return to_number(options.get("length", UNDEFINED))
    return NAN


def build_missing_some(args: Sequence[Arg], path: Path) -> Evaluator:
    """``missing_some``: [] when at least ``need`` keys are present, else the missing keys."""
    need_fn = args[0].fn
    options_fn = args[1].fn

    def missing_some(data: Any) -> list[Any]:
        need = need_fn(data)
        options = options_fn(data)
        if options is None or options is UNDEFINED:
            # json-logic-js reads options.length and throws a TypeError here.
            raise JsonLogicRuntimeError(
                "missing_some needs an array of keys, got null", (*path, "missing_some", 1)
            )
        keys = _missing_keys(options if is_array(options) else [options])
        missing = _missing(data, keys)
        if less_equal(need, _options_length(options) - len(missing)):
            return []
        return missing

    return _with_effects(missing_some, args[2:])


# --------------------------------------------------------------------------- logic


def build_if(args: Sequence[Arg], path: Path) -> Evaluator:
    """``if`` / ``?:``: condition/value pairs, optional else; constant conditions pruned."""
    pairs: list[tuple[Evaluator, Evaluator]] = []
    count = len(args)
    index = 0
    while index < count - 1:
        condition, consequent = args[index], args[index + 1]
        if condition.const:
            if truthy(condition.value):
                final = consequent.fn
                break
        else:
            pairs.append((condition.fn, consequent.fn))
        index += 2
    else:
        final = args[index].fn if count == index + 1 else NULL_ARG.fn

    if not pairs:
        return final
    if len(pairs) == 1:
        ((test, then),) = pairs
        otherwise = final

        def if_else(data: Any) -> Any:
            result = test(data)
            if result is True or (result is not False and truthy(result)):
                return then(data)
            return otherwise(data)

        return if_else
    chain = tuple(pairs)

    def if_chain(data: Any) -> Any:
        for test, then in chain:
            result = test(data)
            if result is True or (result is not False and truthy(result)):
                return then(data)
        return final(data)

    return if_chain


def _prune_chain(args: Sequence[Arg], stop_when: bool) -> list[Evaluator]:
    """Drop constants that can't be the result of and/or; stop at one that must be."""
    kept: list[Evaluator] = []
    last = len(args) - 1
    for index, arg in enumerate(args):
        if arg.const and index != last:
            if truthy(arg.value) == stop_when:
                kept.append(arg.fn)
                break
            continue
        kept.append(arg.fn)
    return kept


def build_and(args: Sequence[Arg], path: Path) -> Evaluator:
    """``and``: the first falsy operand, else the last (undefined when empty)."""
    if not args:
        return UNDEFINED_ARG.fn
    chain = _prune_chain(args, stop_when=False)
    if len(chain) == 1:
        return chain[0]
    if len(chain) == 2:
        first, second = chain

        def and2(data: Any) -> Any:
            result = first(data)
            if result is True or (result is not False and truthy(result)):
                return second(data)
            return result

        return and2
    head, last = tuple(chain[:-1]), chain[-1]

    def and_n(data: Any) -> Any:
        for fn in head:
            result = fn(data)
            if not (result is True or (result is not False and truthy(result))):
                return result
        return last(data)

    return and_n


def build_or(args: Sequence[Arg], path: Path) -> Evaluator:
    """``or``: the first truthy operand, else the last (undefined when empty)."""
    if not args:
        return UNDEFINED_ARG.fn
    chain = _prune_chain(args, stop_when=True)
    if len(chain) == 1:
        return chain[0]
    if len(chain) == 2:
        first, second = chain

        def or2(data: Any) -> Any:
            result = first(data)
            if result is True or (result is not False and truthy(result)):
                return result
            return second(data)

        return or2
    head, last = tuple(chain[:-1]), chain[-1]

    def or_n(data: Any) -> Any:
        for fn in head:
            result = fn(data)
            if result is True or (result is not False and truthy(result)):
                return result
        return last(data)

    return or_n


def build_not(args: Sequence[Arg], path: Path) -> Evaluator:
    """``!``: negated truthiness of the first argument."""
    fn = _arg(args, 0).fn
    return _with_effects(lambda data: not truthy(fn(data)), args[1:])


def build_not_not(args: Sequence[Arg], path: Path) -> Evaluator:
    """``!!``: truthiness of the first argument."""
    fn = _arg(args, 0).fn
    return _with_effects(lambda data: truthy(fn(data)), args[1:])


# --------------------------------------------------------------------------- equality


def _equality(args: Sequence[Arg], strict: bool, negate: bool) -> Evaluator:
    left, right = _arg(args, 0), _arg(args, 1)
    if left.const and not right.const:
        left, right = right, left  # both equalities are symmetric
    slow = strict_equal if strict else loose_equal
    fn = left.fn
    if right.const and _is_scalar(right.value):
        constant = right.value
        if _is_number(constant):
            if constant != constant:  # NaN equals nothing
                return _with_effects(lambda data: negate, [left])
            if negate:

                def not_equal_number(data: Any) -> bool:
                    value = fn(data)
                    if type(value) is int or type(value) is float:
                        return value != constant
                    return not slow(value, constant)

                return not_equal_number

            def equal_number(data: Any) -> bool:
                value = fn(data)
                if type(value) is int or type(value) is float:
                    return value == constant
                return slow(value, constant)

            return equal_number
        if type(constant) is str:
            if negate:

                def not_equal_string(data: Any) -> bool:
                    value = fn(data)
                    if type(value) is str:
                        return value != constant
                    return not slow(value, constant)

                return not_equal_string

            def equal_string(data: Any) -> bool:
                value = fn(data)
                if type(value) is str:
                    return value == constant
                return slow(value, constant)

            return equal_string
    other = right.fn
    if negate:
        return lambda data: not slow(fn(data), other(data))
    return lambda data: slow(fn(data), other(data))


def build_loose_equal(args: Sequence[Arg], path: Path) -> Evaluator:
    """``==``: JavaScript loose equality."""
    return _with_effects(_equality(args, strict=False, negate=False), args[2:])


def build_loose_not_equal(args: Sequence[Arg], path: Path) -> Evaluator:
    """``!=``: negated JavaScript loose equality."""
    return _with_effects(_equality(args, strict=False, negate=True), args[2:])


def build_strict_equal(args: Sequence[Arg], path: Path) -> Evaluator:
    """``===``: JavaScript strict equality."""
    return _with_effects(_equality(args, strict=True, negate=False), args[2:])


def build_strict_not_equal(args: Sequence[Arg], path: Path) -> Evaluator:
    """``!==``: negated JavaScript strict equality."""
    return _with_effects(_equality(args, strict=True, negate=True), args[2:])


# --------------------------------------------------------------------------- relational


def _greater_than(a: Any, b: Any) -> bool:
    return less_than(b, a)


def _greater_equal(a: Any, b: Any) -> bool:
    return less_equal(b, a)


_SLOW: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": less_than,
    "<=": less_equal,
    ">": _greater_than,
    ">=": _greater_equal,
}
_MIRROR: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _against_number(op: str, fn: Evaluator, constant: float) -> Evaluator:
    """``fn(data) <op> constant`` with a fast path for numeric values."""
    slow = _SLOW[op]
    if op == "<":

        def lt(data: Any) -> bool:
            value = fn(data)
            if type(value) is int or type(value) is float:
                return value < constant
            return slow(value, constant)

        return lt
    if op == "<=":

        def le(data: Any) -> bool:
            value = fn(data)
            if type(value) is int or type(value) is float:
                return value <= constant
            return slow(value, constant)

        return le
    if op == ">":

        def gt(data: Any) -> bool:
            value = fn(data)
            if type(value) is int or type(value) is float:
                return value > constant
            return slow(value, constant)

        return gt

    def ge(data: Any) -> bool:
        value = fn(data)
        if type(value) is int or type(value) is float:
            return value >= constant
        return slow(value, constant)

    return ge


def _binary_relational(op: str, left: Arg, right: Arg) -> Evaluator:
    if left.const and not right.const:
        op = _MIRROR[op]
        left, right = right, left
    slow = _SLOW[op]
    fn = left.fn
    if right.const and _is_number(right.value):
        return _against_number(op, fn, right.value)
    if right.const and _is_scalar(right.value):
        constant = right.value
        return lambda data: slow(fn(data), constant)
    other = right.fn
    return lambda data: slow(fn(data), other(data))


def _relational(op: str) -> Callable[[Sequence[Arg], Path], Evaluator]:
    between = op in ("<", "<=")

    def build(args: Sequence[Arg], path: Path) -> Evaluator:
        left, middle = _arg(args, 0), _arg(args, 1)
        if not between or len(args) < 3 or (args[2].const and args[2].value is UNDEFINED):
            return _with_effects(_binary_relational(op, left, middle), args[2:])
        upper = args[2]
        slow = _SLOW[op]
        extra = args[3:]
        if left.const and upper.const and _is_number(left.value) and _is_number(upper.value):
            low, high, fn = left.value, upper.value, middle.fn
            if op == "<":

                def between_exclusive(data: Any) -> bool:
                    value = fn(data)
                    if type(value) is int or type(value) is float:
                        return low < value < high
                    return slow(low, value) and slow(value, high)

                return _with_effects(between_exclusive, extra)

            def between_inclusive(data: Any) -> bool:
                value = fn(data)
                if type(value) is int or type(value) is float:
                    return low <= value <= high
                return slow(low, value) and slow(value, high)

            return _with_effects(between_inclusive, extra)
        first, second, third = left.fn, middle.fn, upper.fn

        def between_generic(data: Any) -> bool:
            a = first(data)
            b = second(data)
            c = third(data)
            if c is UNDEFINED:
                return slow(a, b)
            return slow(a, b) and slow(b, c)

        return _with_effects(between_generic, extra)

    build.__doc__ = f"``{op}``: JavaScript relational comparison."
    return build


# --------------------------------------------------------------------------- in, cat, substr


def _js_in(needle: Any, haystack: Any, path: Path) -> bool:
    """json-logic-js ``in``: ``b.indexOf(a) !== -1`` for arrays and strings, else false."""
    if not js_truthy(haystack):
        return False
    if is_array(haystack):
        return strict_contains(haystack, needle)
    if kind(haystack) == K_STR:
        return to_string(needle) in str.__str__(haystack)
    if isinstance(haystack, dict) and "indexOf" in haystack:
        # A data object with an "indexOf" key: json-logic-js calls it and throws a TypeError.
        raise JsonLogicRuntimeError("in: b.indexOf is not a function", (*path, "in", 1))
    return False


def build_in(args: Sequence[Arg], path: Path) -> Evaluator:
    """``in``: strict membership in an array, or substring of a string."""
    needle, haystack = _arg(args, 0), _arg(args, 1)
    fn = needle.fn
    extra = args[2:]
    if haystack.const and is_array(haystack.value):
        items = haystack.value
        if items and all(type(item) is str for item in items):
            strings = frozenset(items)

            def in_strings(data: Any) -> bool:
                value = fn(data)
                if type(value) is str:
                    return value in strings
                return strict_contains(items, value)

            return _with_effects(in_strings, extra)
        if items and all(_is_number(item) for item in items):
            # NaN is never found by indexOf; leaving it out of the set keeps that true.
            numbers = frozenset(item for item in items if item == item)

            def in_numbers(data: Any) -> bool:
                value = fn(data)
                if type(value) is int or type(value) is float:
                    return value in numbers
                return strict_contains(items, value)

            return _with_effects(in_numbers, extra)
        return _with_effects(lambda data: strict_contains(items, fn(data)), extra)
    if haystack.const and type(haystack.value) is str and haystack.value:
        text = haystack.value

        def in_text(data: Any) -> bool:
            value = fn(data)
            return (value if type(value) is str else to_string(value)) in text

        return _with_effects(in_text, extra)
    other = haystack.fn
    return _with_effects(lambda data: _js_in(fn(data), other(data), path), extra)


def _cat_part(value: Any) -> str:
    # Array.prototype.join turns null and undefined into "".
    if type(value) is str:
        return value
    if value is None or value is UNDEFINED:
        return ""
    return to_string(value)


def build_cat(args: Sequence[Arg], path: Path) -> Evaluator:
    """``cat``: ``Array.prototype.join.call(arguments, "")``."""
    parts: list[str | Evaluator] = []
    for arg in args:
        if arg.const:
            text = _cat_part(arg.value)
            if parts and isinstance(parts[-1], str):
                parts[-1] += text
            else:
                parts.append(text)
        else:
            parts.append(arg.fn)
    if len(parts) == 2:
        a, b = parts
        if isinstance(a, str) and not isinstance(b, str):
            return lambda data: a + _cat_part(b(data))
        if isinstance(b, str) and not isinstance(a, str):
            return lambda data: _cat_part(a(data)) + b
    plan = tuple(parts)
    return lambda data: "".join(
        [part if isinstance(part, str) else _cat_part(part(data)) for part in plan]
    )


def _js_add(a: Any, b: Any) -> Any:
    """JavaScript binary ``+``: concatenation if either primitive is a string."""
    pa, pb = to_primitive(a), to_primitive(b)
    if kind(pa) == K_STR or kind(pb) == K_STR:
        return to_string(pa) + to_string(pb)
    return to_number(pa) + to_number(pb)


def _substr(text: str, start: Any, length: Any) -> str:
    """``String.prototype.substr(start, length)`` (Annex B), in UTF-16 code units."""
    size = utf16_length(text)
    begin = to_integer_or_infinity(start)
    if begin == -INF:
        begin = 0.0
    elif begin < 0:
        begin = max(size + begin, 0.0)
    else:
        begin = min(begin, float(size))
    span = float(size) if length is UNDEFINED else to_integer_or_infinity(length)
    span = min(max(span, 0.0), float(size))
    end = min(begin + span, float(size))
    if end <= begin:
        return ""
    return utf16_slice(text, int(begin), int(end))


def js_substr(source: Any, start: Any, length: Any) -> str:
    """json-logic-js ``substr``: JavaScript substr, plus PHP-like negative lengths."""
    text = to_string(source)
    if length is not UNDEFINED and less_than(length, 0):
        rest = _substr(text, start, UNDEFINED)
        return _substr(rest, 0, _js_add(utf16_length(rest), length))
    return _substr(text, start, length)


def build_substr(args: Sequence[Arg], path: Path) -> Evaluator:
    """``substr``: substring by start and (possibly negative) length."""
    source, start, length = _arg(args, 0).fn, _arg(args, 1).fn, _arg(args, 2).fn
    return _with_effects(lambda data: js_substr(source(data), start(data), length(data)), args[3:])


# --------------------------------------------------------------------------- arithmetic


def _number(value: Any) -> float:
    return value if type(value) is float else to_number(value)


def build_add(args: Sequence[Arg], path: Path) -> Evaluator:
    """``+``: ``0 + parseFloat(a) + parseFloat(b) ...`` (so unary ``+`` casts strings)."""
    if not args:
        return lambda _data: 0.0
    terms: list[float | Evaluator] = [
        parse_float(arg.value) if arg.const else arg.fn for arg in args
    ]
    if len(terms) == 1:
        (only,) = terms
        if callable(only):
            return lambda data: 0.0 + parse_float(only(data))
    if len(terms) == 2:
        a, b = terms
        if callable(a) and callable(b):
            return lambda data: 0.0 + parse_float(a(data)) + parse_float(b(data))
        if callable(a) and isinstance(b, float):
            right = b
            return lambda data: 0.0 + parse_float(a(data)) + right
        if callable(b) and isinstance(a, float):
            left = a
            return lambda data: 0.0 + left + parse_float(b(data))
    plan = tuple(terms)

    def add(data: Any) -> float:
        total = 0.0
        for term in plan:
            total = total + (parse_float(term(data)) if callable(term) else term)
        return total

    return add


def build_multiply(args: Sequence[Arg], path: Path) -> Evaluator:
    """``*``: reduce without a seed, so a single argument is returned unconverted."""
    if len(args) == 1:
        return args[0].fn
    fns = tuple(arg.fn for arg in args)
    if len(fns) == 2:
        a, b = fns
        return lambda data: parse_float(a(data)) * parse_float(b(data))
    first, rest = fns[0], fns[1:]

    def multiply(data: Any) -> float:
        product = parse_float(first(data))
        for fn in rest:
            # The accumulator goes through parseFloat(String(acc)) again: -0 becomes +0.
            product = (product + 0.0) * parse_float(fn(data))
        return product

    return multiply


def build_subtract(args: Sequence[Arg], path: Path) -> Evaluator:
    """``-``: ``-a`` when b is undefined, else ``a - b`` (Number() coercion)."""
    a, b = _arg(args, 0).fn, _arg(args, 1).fn
    if len(args) < 2:
        return lambda data: -_number(a(data))

    def subtract(data: Any) -> float:
        left = a(data)
        right = b(data)
        if right is UNDEFINED:
            return -_number(left)
        return _number(left) - _number(right)

    return _with_effects(subtract, args[2:])


def build_divide(args: Sequence[Arg], path: Path) -> Evaluator:
    """``/``: JavaScript division (x/0 is ±Infinity, 0/0 is NaN)."""
    a, b = _arg(args, 0).fn, _arg(args, 1).fn
    return _with_effects(lambda data: js_divide(_number(a(data)), _number(b(data))), args[2:])


def build_remainder(args: Sequence[Arg], path: Path) -> Evaluator:
    """``%``: JavaScript remainder (sign of the dividend)."""
    a, b = _arg(args, 0).fn, _arg(args, 1).fn
    return _with_effects(lambda data: js_remainder(_number(a(data)), _number(b(data))), args[2:])


def js_min(values: Sequence[Any]) -> float:
    """``Math.min``: NaN if any argument is NaN; -0 is smaller than +0; empty is Infinity."""
    result = INF
    for value in values:
        number = _number(value)
        if number != number:
            return NAN
        if number < result or (number == 0.0 == result and math.copysign(1.0, number) < 0):
            result = number
    return result


def js_max(values: Sequence[Any]) -> float:
    """``Math.max``: NaN if any argument is NaN; +0 is larger than -0; empty is -Infinity."""
    result = -INF
    for value in values:
        number = _number(value)
        if number != number:
            return NAN
        if number > result or (number == 0.0 == result and math.copysign(1.0, number) > 0):
            result = number
    return result


def build_min(args: Sequence[Arg], path: Path) -> Evaluator:
    """``min``: Math.min over the arguments."""
    fns = tuple(arg.fn for arg in args)
    return lambda data: js_min([fn(data) for fn in fns])


def build_max(args: Sequence[Arg], path: Path) -> Evaluator:
    """``max``: Math.max over the arguments."""
    fns = tuple(arg.fn for arg in args)
    return lambda data: js_max([fn(data) for fn in fns])


# --------------------------------------------------------------------------- arrays


def build_merge(args: Sequence[Arg], path: Path) -> Evaluator:
    """``merge``: concatenate arrays one level deep; non-arrays are appended."""
    fns = tuple(arg.fn for arg in args)

    def merge(data: Any) -> list[Any]:
        result: list[Any] = []
        for fn in fns:
            value = fn(data)
            if is_array(value):
                result.extend(value)
            else:
                result.append(value)
        if len(result) > LIMITS.max_items:
            check_items(len(result), "merge", path)
        return result

    return merge


def build_map(args: Sequence[Arg], path: Path) -> Evaluator:
    """``map``: apply the logic to each item (the item is the logic's data)."""
    source, logic = _arg(args, 0).fn, _arg(args, 1).fn

    def map_items(data: Any) -> list[Any]:
        items = source(data)
        if not is_array(items):
            return []
        return [logic(item) for item in iterate(items, "map", path)]

    return map_items


def build_filter(args: Sequence[Arg], path: Path) -> Evaluator:
    """``filter``: keep the items for which the logic is truthy."""
    source, logic = _arg(args, 0).fn, _arg(args, 1).fn

    def filter_items(data: Any) -> list[Any]:
        items = source(data)
        if not is_array(items):
            return []
        return [
            item
            for item in iterate(items, "filter", path)
            if (result := logic(item)) is True or (result is not False and truthy(result))
        ]

    return filter_items


_SCALAR_TYPES: Final = frozenset({int, float, bool, type(None)})


def _check_accumulator(value: Any, path: Path) -> None:
    """Bound a ``reduce`` accumulator: its strings' total length and its number of values.

    Walks at most max_items values (shared sub-arrays count every time they occur, which is
    what bounds an accumulator nesting itself). Raises JsonLogicLimitError.
    """
    max_items = LIMITS.max_items
    max_text = LIMITS.max_string_length
    count = 0
    text = 0
    stack = [value]
    while stack:
        current = stack.pop()
        if type(current) is str or kind(current) == K_STR:
            text += len(current)
            if text > max_text:
                raise JsonLogicLimitError(
                    f"reduce: the accumulator holds more than {max_text} characters "
                    "(MAX_STRING_LENGTH)",
                    path,
                )
            continue
        if isinstance(current, dict):
            children: Any = current.values()
        elif is_array(current):
            children = current
        else:
            continue
        count += len(children)
        if count > max_items:
            raise JsonLogicLimitError(
                f"reduce: the accumulator holds more than {max_items} values (MAX_ARRAY_ITEMS)",
                path,
            )
        stack.extend(children)


def build_reduce(args: Sequence[Arg], path: Path) -> Evaluator:
    """``reduce``: fold with ``{"current", "accumulator"}`` as the logic's data."""
    source, logic = _arg(args, 0).fn, _arg(args, 1).fn
    initial = args[2].fn if len(args) > 2 else NULL_ARG.fn

    def reduce_items(data: Any) -> Any:
        items = source(data)
        accumulator = initial(data)
        if not is_array(items):
            return accumulator
        iterate(items, "reduce", path)  # size and deadline, as the other iterations
        deadline = DEADLINE.at
        for item in items:
            accumulator = logic({"current": item, "accumulator": accumulator})
            # The accumulator feeds back into the logic: the only way a rule can grow a value
            # exponentially (cat or merge of the accumulator with itself), so every step is
            # bounded, in size and in time.
            if type(accumulator) not in _SCALAR_TYPES:
                _check_accumulator(accumulator, path)
            if _limits_clock() > deadline:
                raise budget_error(path)
        return accumulator

    return reduce_items


def build_all(args: Sequence[Arg], path: Path) -> Evaluator:
    """``all``: true if the logic is truthy for every item; false for an empty array."""
    source, logic = _arg(args, 0).fn, _arg(args, 1).fn

    def all_items(data: Any) -> bool:
        items = source(data)
        if not is_array(items) or not items:
            return False
        for item in iterate(items, "all", path):
            result = logic(item)
            if not (result is True or (result is not False and truthy(result))):
                return False
        return True

    return all_items


def build_none(args: Sequence[Arg], path: Path) -> Evaluator:
    """``none``: true if the logic is falsy for every item (and for an empty array)."""
    source, logic = _arg(args, 0).fn, _arg(args, 1).fn

    def no_items(data: Any) -> bool:
        items = source(data)
        if not is_array(items):
            return True
        for item in iterate(items, "none", path):
            result = logic(item)
            if result is True or (result is not False and truthy(result)):
                return False
        return True

    return no_items


def build_some(args: Sequence[Arg], path: Path) -> Evaluator:
    """``some``: true if the logic is truthy for at least one item."""
    source, logic = _arg(args, 0).fn, _arg(args, 1).fn

    def some_items(data: Any) -> bool:
        items = source(data)
        if not is_array(items):
            return False
        for item in iterate(items, "some", path):
            result = logic(item)
            if result is True or (result is not False and truthy(result)):
                return True
        return False

    return some_items


# --------------------------------------------------------------------------- misc


def build_log(args: Sequence[Arg], path: Path) -> Evaluator:
    """``log``: return the first argument, logging it at INFO (console.log in JS)."""
    fn = _arg(args, 0).fn
    where = render_json_path(path)

    def log(data: Any) -> Any:
        value = fn(data)
        _LOG.info("jsonlogic log at %s: %r", where, value)
        return value

    return _with_effects(log, args[1:])


# --------------------------------------------------------------------------- table


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    """How the compiler treats one built-in operator.

    ``reads_data``: the result depends on the data even with constant arguments (never
    folded). ``pure``: no effects (``log`` is the only impure built-in). ``scoped``: indexes of
    arguments evaluated against each item instead of the data. ``min_args``: fewer arguments
    make json-logic-js throw whatever the values, so the compiler rejects the rule.
    """

    build: Callable[[Sequence[Arg], Path], Evaluator]
    reads_data: bool = False
    pure: bool = True
    scoped: frozenset[int] = frozenset()
    min_args: int = 0
    arity_message: str = ""


_SCOPED: Final = frozenset({1})

OPERATORS: Final[dict[str, OperatorSpec]] = {
    "var": OperatorSpec(build_var, reads_data=True),
    "missing": OperatorSpec(build_missing, reads_data=True),
    "missing_some": OperatorSpec(
        build_missing_some,
        reads_data=True,
        min_args=2,
        arity_message="missing_some needs 2 arguments: [need_count, [keys]]",
    ),
    "if": OperatorSpec(build_if),
    "?:": OperatorSpec(build_if),
    "and": OperatorSpec(build_and),
    "or": OperatorSpec(build_or),
    "!": OperatorSpec(build_not),
    "!!": OperatorSpec(build_not_not),
    "==": OperatorSpec(build_loose_equal),
    "!=": OperatorSpec(build_loose_not_equal),
    "===": OperatorSpec(build_strict_equal),
    "!==": OperatorSpec(build_strict_not_equal),
    "<": OperatorSpec(_relational("<")),
    "<=": OperatorSpec(_relational("<=")),
    ">": OperatorSpec(_relational(">")),
    ">=": OperatorSpec(_relational(">=")),
    "in": OperatorSpec(build_in),
    "cat": OperatorSpec(build_cat),
    "substr": OperatorSpec(build_substr),
    "+": OperatorSpec(build_add),
    "-": OperatorSpec(build_subtract),
    "*": OperatorSpec(
        build_multiply,
        min_args=1,
        arity_message="* needs at least 1 argument (json-logic-js throws on an empty reduce)",
    ),
    "/": OperatorSpec(build_divide),
    "%": OperatorSpec(build_remainder),
    "min": OperatorSpec(build_min),
    "max": OperatorSpec(build_max),
    "merge": OperatorSpec(build_merge),
    "map": OperatorSpec(build_map, scoped=_SCOPED),
    "filter": OperatorSpec(build_filter, scoped=_SCOPED),
    "reduce": OperatorSpec(build_reduce, scoped=_SCOPED),
    "all": OperatorSpec(build_all, scoped=_SCOPED),
    "none": OperatorSpec(build_none, scoped=_SCOPED),
    "some": OperatorSpec(build_some, scoped=_SCOPED),
    "log": OperatorSpec(build_log, pure=False),
}

BUILTIN_OPERATORS: Final = frozenset(OPERATORS)

__all__ = [
    "BUILTIN_OPERATORS",
    "OPERATORS",
    "Arg",
    "Evaluator",
    "OperatorSpec",
    "copy_value",
    "js_substr",
    "var_lookup",
]
