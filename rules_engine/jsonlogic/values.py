"""JavaScript value semantics for JSONLogic, the way json-logic-js 2.x sees its values.

Python values stand for JavaScript values as follows:

* ``None`` is ``null``; :data:`UNDEFINED` is ``undefined`` (only degenerate rules produce it,
  e.g. ``{"and": []}`` or a missing argument);
* ``bool`` is Boolean; ``int`` and ``float`` are Number (``float('nan')`` and ``±inf`` are NaN
  and ±Infinity; ``-0.0`` is -0);
* ``str`` is String (lengths and indexes count UTF-16 code units, as in JavaScript);
* ``list`` and ``tuple`` are Array; ``dict`` is a plain Object;
* any other Python object is an opaque Object: truthy, ``"[object Object]"`` as a string,
  NaN as a number. It is never introspected (no attribute access, no method calls), which is
  what keeps rules from reaching into Python.

Arithmetic results are always ``float`` because JavaScript numbers are doubles; this keeps -0,
NaN, Infinity and rounding identical to the reference. :func:`to_json` turns integral floats
back into ints for output.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

__all__ = [
    "UNDEFINED",
    "js_truthy",
    "loose_equal",
    "parse_float",
    "strict_equal",
    "to_json",
    "to_number",
    "to_string",
    "truthy",
]


class _Undefined:
    """The JavaScript ``undefined`` value (a singleton, falsy, never equal to ``None``)."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        # Pickle by name so the singleton survives a round trip.
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()

INF: Final = math.inf
NAN: Final = math.nan
# Integers up to 2**53 are exactly representable as doubles; beyond that JavaScript would
# already have rounded them, so conversions go through float.
_SAFE_INT: Final = 2**53

# Value kinds in the sense of the ECMAScript spec's Type(x), plus Array split out of Object.
K_UNDEF: Final = 0
K_NULL: Final = 1
K_BOOL: Final = 2
K_NUM: Final = 3
K_STR: Final = 4
K_ARR: Final = 5
K_OBJ: Final = 6

_KIND_BY_TYPE: Final[dict[type, int]] = {
    type(None): K_NULL,
    _Undefined: K_UNDEF,
    bool: K_BOOL,
    int: K_NUM,
    float: K_NUM,
    str: K_STR,
    list: K_ARR,
    tuple: K_ARR,
    dict: K_OBJ,
}


def kind(value: Any) -> int:
    """Return the JavaScript kind (``K_*``) of a Python value. Raises nothing."""
    k = _KIND_BY_TYPE.get(type(value))
    if k is not None:
        return k
    # Subclasses (IntEnum, str subclasses, OrderedDict, ...) behave like their base type.
    if isinstance(value, bool):
        return K_BOOL
    if isinstance(value, (int, float)):
        return K_NUM
    if isinstance(value, str):
        return K_STR
    if isinstance(value, (list, tuple)):
        return K_ARR
    return K_OBJ


def _plain_number(value: Any) -> int | float:
    """The plain int/float behind a number subclass (IntEnum...), via the base-type slots so
    no overridden hook of the subclass runs."""
    if isinstance(value, int):
        return int.__index__(value)
    return float.__float__(value)


def is_array(value: Any) -> bool:
    """Return True for values that are JavaScript arrays (list or tuple). Raises nothing."""
    t = type(value)
    return t is list or t is tuple or isinstance(value, (list, tuple))


# --------------------------------------------------------------------------- truthiness


def truthy(value: Any) -> bool:
    """JSONLogic truthiness: JavaScript's, except that an empty array is false. Raises nothing."""
    t = type(value)
    if t is bool:
        return value
    if t is int or t is str or t is list:
        return bool(value)
    if t is float:
        return value == value and value != 0.0
    if value is None or value is UNDEFINED:
        return False
    if t is dict:
        return True
    k = kind(value)
    if k == K_NUM:
        number = _plain_number(value)
        return number == number and number != 0
    if k in (K_STR, K_ARR):
        return len(value) != 0
    return True


def js_truthy(value: Any) -> bool:
    """Plain JavaScript truthiness (``!!value``): unlike :func:`truthy`, ``[]`` is true."""
    if is_array(value):
        return True
    return truthy(value)


# --------------------------------------------------------------------------- numbers

# JavaScript's StrWhiteSpaceChar: WhiteSpace plus LineTerminator. Python's str.strip() would
# also remove \x1c-\x1f and \x85, which JavaScript keeps (so Number("\x1c1") is NaN).
_JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
# StrDecimalLiteral with ASCII digits only (Python's \d would accept other scripts' digits).
_DECIMAL: Final = re.compile(
    r"[+-]?(?:Infinity|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
_NON_DECIMAL: Final = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
_RADIX: Final = {"x": 16, "X": 16, "o": 8, "O": 8, "b": 2, "B": 2}


def int_to_float(value: int) -> float:
    """Convert an int to the double JavaScript would hold; huge ints become ±Infinity."""
    try:
        return float(value)
    except OverflowError:
        return INF if value > 0 else -INF


def string_to_number(text: str) -> float:
    """JavaScript ``Number(string)``: whole-string numeric literal, else NaN. Raises nothing."""
    stripped = text.strip(_JS_WHITESPACE)
    if not stripped:
        return 0.0
    if _DECIMAL.fullmatch(stripped):
        return float(stripped)
    if _NON_DECIMAL.fullmatch(stripped):
        return int_to_float(int(stripped[2:], _RADIX[stripped[1]]))
    return NAN


def to_number(value: Any) -> float:
    """JavaScript ``Number(value)`` (ToNumber with ToPrimitive for objects). Raises nothing."""
    t = type(value)
    if t is float:
        return value
    if t is int:
        return int_to_float(value)
    if t is str:
        return string_to_number(value)
    if value is None:
        return 0.0
    if t is bool:
        return 1.0 if value else 0.0
    k = kind(value)
    if k == K_NUM:
        number = _plain_number(value)
        return int_to_float(number) if isinstance(number, int) else number
    if k == K_STR:
        return string_to_number(str.__str__(value))
    if k == K_ARR:
        return string_to_number(array_join(value))
    # undefined and plain/opaque objects ("[object Object]") are NaN.
    return NAN


def parse_float(value: Any) -> float:
    """JavaScript ``parseFloat(value)``: longest numeric prefix of String(value), else NaN."""
    t = type(value)
    if t is float:
        # parseFloat(String(-0)) is +0; adding 0.0 turns -0.0 into 0.0 and keeps NaN/±inf.
        return value + 0.0
    if t is int:
        return int_to_float(value)
    match = _DECIMAL.match(to_string(value).lstrip(_JS_WHITESPACE))
    if match is None:
        return NAN
    return float(match.group())


def to_integer_or_infinity(value: Any) -> float:
    """JavaScript ToIntegerOrInfinity: NaN -> 0, ±Infinity kept, otherwise truncated."""
    number = to_number(value)
    if number != number:
        return 0.0
    if number in (INF, -INF):
        return number
    return float(math.trunc(number))


def js_divide(a: float, b: float) -> float:
    """JavaScript ``a / b`` on numbers: division by zero gives ±Infinity or NaN."""
    if b:
        return a / b
    if a != a or a == 0.0 or b != b:
        return NAN
    # The sign of the infinity is the XOR of both signs, including the sign of a zero divisor.
    return math.copysign(INF, a) * math.copysign(1.0, b)


def js_remainder(a: float, b: float) -> float:
    """JavaScript ``a % b`` on numbers: the result takes the dividend's sign (C fmod)."""
    if a != a or b != b or b == 0.0 or a in (INF, -INF):
        return NAN
    if b in (INF, -INF):
        return a
    return math.fmod(a, b)


# --------------------------------------------------------------------------- strings


def float_to_string(value: float) -> str:
    """JavaScript ``Number::toString`` for a double (shortest round-trip digits)."""
    if value != value:
        return "NaN"
    if value in (INF, -INF):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0.0:
        return "0"  # -0 prints as "0" too
    if value.is_integer() and -_SAFE_INT < value < _SAFE_INT:
        return str(int(value))
    # Python's repr yields the same shortest round-trip digits as JavaScript; only the layout
    # (where to switch to exponent notation and how to write it) differs, so re-lay them out.
    sign = "-" if value < 0 else ""
    mantissa, _, exponent_text = repr(abs(value)).partition("e")
    integer_part, _, fraction = mantissa.partition(".")
    all_digits = integer_part + fraction
    stripped = all_digits.lstrip("0")
    leading_zeros = len(all_digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    # n is the position of the decimal point relative to the digits: value = 0.digits * 10**n.
    n = len(integer_part) + (int(exponent_text) if exponent_text else 0) - leading_zeros
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exponent = n - 1
    exponent_sign = "+" if exponent >= 0 else "-"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{head}e{exponent_sign}{abs(exponent)}"


def int_to_string(value: int) -> str:
    """JavaScript ``String(n)`` for an int (beyond 2**53 it goes through a double first)."""
    if -_SAFE_INT <= value <= _SAFE_INT:
        return str(value)
    return float_to_string(int_to_float(value))


def array_join(value: Any) -> str:
    """JavaScript ``Array.prototype.join(",")`` (also an array's ToPrimitive). Raises nothing."""
    return ",".join(
        ["" if item is None or item is UNDEFINED else to_string(item) for item in value]
    )


def to_string(value: Any) -> str:
    """JavaScript ``String(value)``. Raises nothing (RecursionError on absurdly deep arrays)."""
    t = type(value)
    if t is str:
        return value
    if t is int:
        return int_to_string(value)
    if t is float:
        return float_to_string(value)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    k = kind(value)
    if k == K_ARR:
        return array_join(value)
    if k == K_STR:
        return str.__str__(value)
    if k == K_NUM:
        number = _plain_number(value)
        return int_to_string(number) if isinstance(number, int) else float_to_string(number)
    return "[object Object]"


def to_primitive(value: Any) -> Any:
    """JavaScript ToPrimitive: arrays become their join, objects ``"[object Object]"``."""
    k = kind(value)
    if k == K_ARR:
        return array_join(value)
    if k == K_OBJ:
        return "[object Object]"
    return value


def utf16_length(text: str) -> int:
    """Length of a string in UTF-16 code units (JavaScript's ``.length``). Raises nothing."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf16_slice(text: str, start: int, end: int) -> str:
    """Slice a string by UTF-16 code unit offsets, as JavaScript would. Raises nothing."""
    if text.isascii():
        return text[start:end]
    encoded = text.encode("utf-16-le", "surrogatepass")
    if len(encoded) == 2 * len(text):  # no astral characters: code units == code points
        return text[start:end]
    return encoded[2 * start : 2 * end].decode("utf-16-le", "surrogatepass")


def string_less_than(a: str, b: str) -> bool:
    """JavaScript ``a < b`` on strings: compares UTF-16 code units, not code points."""
    if a.isascii() and b.isascii():
        return a < b
    return a.encode("utf-16-be", "surrogatepass") < b.encode("utf-16-be", "surrogatepass")


# --------------------------------------------------------------------------- comparisons


def strict_equal(a: Any, b: Any) -> bool:
    """JavaScript ``a === b``: no coercion; int and float are both Number; arrays and objects
    compare by identity; booleans never equal numbers. Raises nothing."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int or ta is float):
        return a == b
    ka = kind(a)
    if ka != kind(b):
        return False
    if ka == K_NUM:
        return to_number(a) == to_number(b)
    if ka == K_STR:
        return str.__str__(a) == str.__str__(b)
    if ka == K_BOOL:
        return a is b
    if ka in (K_NULL, K_UNDEF):
        return True
    return a is b


def loose_equal(a: Any, b: Any) -> bool:
    """JavaScript ``a == b`` (IsLooselyEqual, with ToPrimitive/ToNumber coercions)."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int or ta is float):
        return a == b
    ka = kind(a)
    kb = kind(b)
    if ka == kb:
        return strict_equal(a, b)
    if ka <= K_NULL and kb <= K_NULL:  # null == undefined
        return True
    if ka <= K_NULL or kb <= K_NULL:
        return False
    if ka == K_BOOL:
        return loose_equal(1.0 if a else 0.0, b)
    if kb == K_BOOL:
        return loose_equal(a, 1.0 if b else 0.0)
    if ka == K_NUM and kb == K_STR:
        return to_number(a) == string_to_number(str.__str__(b))
    if ka == K_STR and kb == K_NUM:
        return string_to_number(str.__str__(a)) == to_number(b)
    if ka >= K_ARR and kb < K_ARR:
        return loose_equal(to_primitive(a), b)
    if kb >= K_ARR and ka < K_ARR:
        return loose_equal(a, to_primitive(b))
    # Array vs object: different objects, never equal.
    return False


def _primitives(a: Any, b: Any) -> tuple[Any, Any, bool]:
    pa = to_primitive(a)
    pb = to_primitive(b)
    return pa, pb, kind(pa) == K_STR and kind(pb) == K_STR


def less_than(a: Any, b: Any) -> bool:
    """JavaScript ``a < b`` (Abstract Relational Comparison; NaN makes it false)."""
    ta = type(a)
    tb = type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a < b
    pa, pb, strings = _primitives(a, b)
    if strings:
        return string_less_than(str.__str__(pa), str.__str__(pb))
    return to_number(pa) < to_number(pb)


def less_equal(a: Any, b: Any) -> bool:
    """JavaScript ``a <= b`` (false when either side is NaN after coercion)."""
    ta = type(a)
    tb = type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a <= b
    pa, pb, strings = _primitives(a, b)
    if strings:
        return not string_less_than(str.__str__(pb), str.__str__(pa))
    return to_number(pa) <= to_number(pb)


def strict_contains(array: Any, needle: Any) -> bool:
    """JavaScript ``array.indexOf(needle) !== -1`` (strict equality, NaN never found)."""
    if type(needle) is str:
        for item in array:
            if type(item) is str:
                if item == needle:
                    return True
            elif kind(item) == K_STR and str.__str__(item) == needle:
                return True
        return False
    return any(strict_equal(item, needle) for item in array)


# --------------------------------------------------------------------------- output


def to_json(value: Any) -> Any:
    """Convert an evaluation result to JSON data exactly like ``JSON.stringify`` would.

    NaN and ±Infinity become ``None`` (null); ``undefined`` becomes ``None`` (inside objects the
    key is dropped, like JSON.stringify does); integral floats with magnitude below 2**53
    become ``int`` (so ``-0.0`` and ``3.0`` render as ``0`` and ``3``); tuples become lists.
    Raises TypeError for Python objects that are not JSON data (e.g. a datetime).
    """
    t = type(value)
    if t is str or t is bool or t is int or value is None:
        return value
    if t is float:
        if value != value or value in (INF, -INF):
            return None
        if value.is_integer() and -_SAFE_INT < value < _SAFE_INT:
            return int(value)
        return value
    if value is UNDEFINED:
        return None
    k = kind(value)
    if k == K_ARR:
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {
            (key if type(key) is str else to_string(key)): to_json(item)
            for key, item in value.items()
            if item is not UNDEFINED
        }
    if k == K_STR:
        return str.__str__(value)
    if k == K_NUM:
        return to_json(_plain_number(value))
    raise TypeError(f"{type(value).__name__} is not JSON data")
