"""Built-in functions rules call as JSONLogic operators: dates, strings, regexes, bucketing.

Every function is pure and bounded: it reads only its arguments (there is no hidden clock:
"now" is the variable ``$now`` the engine puts in the data, see ``rules_engine.engine``), its
work is linear in its (bounded) input, and what it builds is bounded by the limits of
:mod:`rules_engine.jsonlogic.limits` (``MAX_STRING_LENGTH``, ``MAX_ARRAY_ITEMS``,
``MAX_PATTERN_LENGTH``). Bad input (an invalid date, an unknown time zone, a pattern RE2 cannot
compile) is a run-time error of the rule that called the function, never a crash; when the
offending argument is a constant, the rule is refused when it is saved, with the argument's
path (the ``bind`` hook of :mod:`rules_engine.functions`).

Conventions:

* Instants are ISO-8601 strings (``2024-03-01T12:00:00Z``, ``2024-03-01T14:00:00+02:00``;
  ``2024-03-01`` is midnight). A value without an offset is taken as UTC. Functions returning
  an instant return it normalised to UTC with a ``Z`` suffix, microseconds only when not zero.
* Time zones are IANA names (``Europe/Paris``); the default is ``UTC``.
* Duration units: ``seconds``, ``minutes``, ``hours``, ``days``, ``weeks`` (a day is 24 hours:
  instants are absolute, not wall-clock times).
* String functions take strings; numbers and booleans are converted as JavaScript would
  (``String(x)``); null gives null (``lower``/``upper``/``trim``/``replace``), false
  (``starts_with``/``ends_with``/``contains``/``regex_*`` tests), ``[]`` (``split``) or 0
  (``length``); arrays and objects are an error. Lengths count characters (code points).
* Regular expressions use RE2 (``google-re2``): linear-time matching, no backreferences or
  lookaround; flags inline, e.g. ``(?i)``.

``register_builtins`` puts them in a registry; it runs once at startup
(``RulesEngineConfig.ready``) and may run again (it skips functions already registered).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

import re2

from rules_engine.functions import (
    NOT_CONSTANT,
    Arity,
    FunctionBindError,
    FunctionRegistry,
)
from rules_engine.functions import registry as default_registry
from rules_engine.jsonlogic.limits import LIMITS, check_items, check_text
from rules_engine.jsonlogic.values import K_ARR, K_BOOL, K_NUM, K_OBJ, K_STR, kind, to_string

__all__ = ["BUILTINS", "Builtin", "format_instant", "parse_instant", "register_builtins"]

# Longest text accepted as an ISO-8601 instant or a time zone name.
_MAX_DATE_TEXT: Final = 64
_UNITS: Final = {
    "seconds": 1.0,
    "minutes": 60.0,
    "hours": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
# Largest number of buckets (and so the largest bucket + 1).
MAX_BUCKETS: Final = 2**32
# RE2 memory budget per compiled pattern; the cache below holds at most 256 of them.
_RE2_MAX_MEM: Final = 1 << 20


# --------------------------------------------------------------------------- values


def _describe(value: Any) -> str:
    k = kind(value)
    if k == K_STR:
        text = str(value)
        return repr(text if len(text) <= 40 else text[:37] + "...")
    if value is None:
        return "null"
    if k in (K_NUM, K_BOOL):
        return to_string(value)
    return "an array" if k == K_ARR else "an object"


def _text(value: Any, function: str) -> str | None:
    """A string argument: strings as they are, numbers and booleans converted, null as None.

    Raises ValueError for arrays and objects, JsonLogicLimitError for strings beyond
    MAX_STRING_LENGTH.
    """
    if type(value) is str:
        text = value
    elif value is None:
        return None
    else:
        k = kind(value)
        if k in (K_ARR, K_OBJ):
            raise ValueError(f"expects a string, got {_describe(value)}")
        text = str.__str__(value) if k == K_STR else to_string(value)
    if len(text) > LIMITS.max_string_length:
        check_text(len(text), function)
    return text


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {_describe(value)}")
    return float(value)


# --------------------------------------------------------------------------- instants


def parse_instant(value: Any) -> datetime:
    """An ISO-8601 date or date-time string as an aware datetime (no offset: UTC).

    Raises ValueError for anything else.
    """
    if kind(value) != K_STR:
        raise ValueError(f"expects an ISO-8601 date-time string, got {_describe(value)}")
    text = str.__str__(value)
    if len(text) > _MAX_DATE_TEXT:
        raise ValueError(f"expects an ISO-8601 date-time, got a string of {len(text)} characters")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid ISO-8601 date-time {_describe(text)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def format_instant(moment: datetime) -> str:
    """An aware datetime as ISO-8601 in UTC with a ``Z`` suffix (microseconds when not 0)."""
    utc = moment.astimezone(UTC)
    text = utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds")
    return text.removesuffix("+00:00") + "Z"


@functools.lru_cache(maxsize=256)
def _zone_or_error(name: str) -> tzinfo | str:
    # Failures are cached too (as their message), so a bad zone in the data costs no file
    # lookup per call.
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ValueError, LookupError, OSError):
        return f"unknown time zone {_describe(name)}"


def _zone(value: Any) -> tzinfo:
    """An IANA time zone by name; null means UTC. Raises ValueError for unknown names."""
    if value is None:
        return UTC
    if kind(value) != K_STR or len(value) > _MAX_DATE_TEXT:
        raise ValueError(f"expects an IANA time zone name, got {_describe(value)}")
    zone = _zone_or_error(str.__str__(value))
    if isinstance(zone, str):
        raise ValueError(zone)
    return zone


def _unit(value: Any) -> float:
    seconds = _UNITS.get(value) if kind(value) == K_STR else None
    if seconds is None:
        raise ValueError(f"unit must be one of {', '.join(_UNITS)}, got {_describe(value)}")
    return seconds


def date_parse(value: Any) -> str:
    """The instant normalised: UTC, ``Z`` suffix."""
    return format_instant(parse_instant(value))


def is_date(value: Any) -> bool:
    """Whether the value is an ISO-8601 date or date-time string (never an error)."""
    try:
        parse_instant(value)
    except ValueError:
        return False
    return True


def date_add(value: Any, amount: Any, unit: Any) -> str:
    """The instant plus ``amount`` units (negative to subtract), normalised."""
    moment = parse_instant(value)
    delta_seconds = _number(amount, "amount") * _unit(unit)
    try:
        return format_instant(moment + timedelta(seconds=delta_seconds))
    except OverflowError:
        raise ValueError("the resulting date is out of range (years 1 to 9999)") from None


def date_diff(later: Any, earlier: Any, unit: Any) -> float:
    """``later - earlier`` in ``unit``, as a (possibly fractional, possibly negative) number."""
    delta = parse_instant(later) - parse_instant(earlier)
    return delta / timedelta(seconds=_unit(unit))


def date_before(a: Any, b: Any) -> bool:
    """Whether instant ``a`` is strictly before instant ``b``."""
    return parse_instant(a) < parse_instant(b)


def date_after(a: Any, b: Any) -> bool:
    """Whether instant ``a`` is strictly after instant ``b``."""
    return parse_instant(a) > parse_instant(b)


def _local(value: Any, zone: Any) -> datetime:
    return parse_instant(value).astimezone(_zone(zone))


def day_of_week(value: Any, zone: Any = None) -> int:
    """ISO day of the week in the time zone: 1 (Monday) to 7 (Sunday)."""
    return _local(value, zone).isoweekday()


def hour_of_day(value: Any, zone: Any = None) -> int:
    """The hour in the time zone, 0 to 23."""
    return _local(value, zone).hour


def local_date(value: Any, zone: Any = None) -> str:
    """The calendar date in the time zone, ``YYYY-MM-DD``."""
    return _local(value, zone).date().isoformat()


def local_time(value: Any, zone: Any = None) -> str:
    """The wall-clock time in the time zone, ``HH:MM`` (compares correctly as text)."""
    return _local(value, zone).strftime("%H:%M")


# --------------------------------------------------------------------------- strings


def lower(value: Any) -> str | None:
    """The string in lower case."""
    text = _text(value, "lower")
    return None if text is None else text.lower()


def upper(value: Any) -> str | None:
    """The string in upper case."""
    text = _text(value, "upper")
    return None if text is None else text.upper()


def trim(value: Any) -> str | None:
    """The string without leading and trailing whitespace."""
    text = _text(value, "trim")
    return None if text is None else text.strip()


def starts_with(value: Any, prefix: Any) -> bool:
    """Whether the string starts with ``prefix``."""
    text, part = _text(value, "starts_with"), _text(prefix, "starts_with")
    return text is not None and part is not None and text.startswith(part)


def ends_with(value: Any, suffix: Any) -> bool:
    """Whether the string ends with ``suffix``."""
    text, part = _text(value, "ends_with"), _text(suffix, "ends_with")
    return text is not None and part is not None and text.endswith(part)


def contains(value: Any, part: Any) -> bool:
    """Whether ``part`` occurs in the string."""
    text, needle = _text(value, "contains"), _text(part, "contains")
    return text is not None and needle is not None and needle in text


def length(value: Any) -> int:
    """Characters of a string, items of an array; 0 for null."""
    if value is None:
        return 0
    if kind(value) == K_ARR:
        return len(value)
    text = _text(value, "length")
    return 0 if text is None else len(text)


def split(value: Any, separator: Any) -> list[str]:
    """The string cut at every ``separator`` (a non-empty string); ``[]`` for null."""
    text, sep = _text(value, "split"), _text(separator, "split")
    if not sep:
        raise ValueError("the separator must be a non-empty string")
    if text is None:
        return []
    # One more piece than allowed tells that the result would be too long, without
    # building it.
    pieces = text.split(sep, LIMITS.max_items)
    if len(pieces) > LIMITS.max_items:
        check_items(text.count(sep) + 1, "split", ())
    return pieces


def replace(value: Any, old: Any, new: Any) -> str | None:
    """The string with every occurrence of ``old`` replaced by ``new``."""
    text = _text(value, "replace")
    target, replacement = _text(old, "replace"), _text(new, "replace")
    if text is None:
        return None
    target = target or ""
    replacement = replacement or ""
    # The result's length is known before it is built: refuse it before building it.
    count = text.count(target)
    check_text(len(text) + count * (len(replacement) - len(target)), "replace")
    return text.replace(target, replacement)


# --------------------------------------------------------------------------- regular expressions


def _pattern_text(pattern: Any) -> str:
    if kind(pattern) != K_STR:
        raise ValueError(f"the pattern must be a string, got {_describe(pattern)}")
    text = str.__str__(pattern)
    if len(text) > LIMITS.max_pattern_length:
        raise ValueError(
            f"the pattern has {len(text)} characters, more than the limit of "
            f"{LIMITS.max_pattern_length} (MAX_PATTERN_LENGTH)"
        )
    return text


@functools.lru_cache(maxsize=256)
def _compiled_or_error(pattern: str) -> Any:
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return f"invalid regular expression {_describe(pattern)}: {reason}"


def _regex(pattern: Any) -> Any:
    """The compiled RE2 pattern (cached). Raises ValueError for a pattern RE2 refuses."""
    compiled = _compiled_or_error(_pattern_text(pattern))
    if isinstance(compiled, str):
        raise ValueError(compiled)
    return compiled


def _group(regex: Any, group: Any) -> int | str:
    """A capture group of ``regex`` by number or name. Raises ValueError if it has none."""
    if group is None:
        return 0
    if kind(group) == K_STR:
        if group not in regex.groupindex:
            raise ValueError(f"the pattern has no group named {_describe(group)}")
        return str.__str__(group)
    if (
        type(group) in (int, float)
        and math.isfinite(group)
        and group == int(group)
        and 0 <= group <= regex.groups
    ):
        return int(group)
    raise ValueError(f"the pattern has no group {_describe(group)}")


def regex_match(value: Any, pattern: Any) -> bool:
    """Whether the whole string matches the pattern."""
    text = _text(value, "regex_match")
    regex = _regex(pattern)
    return text is not None and regex.fullmatch(text) is not None


def regex_search(value: Any, pattern: Any) -> bool:
    """Whether the pattern matches somewhere in the string."""
    text = _text(value, "regex_search")
    regex = _regex(pattern)
    return text is not None and regex.search(text) is not None


def regex_extract(value: Any, pattern: Any, group: Any = None) -> str | None:
    """The text of the first match (or of its capture ``group``), null when nothing matches."""
    text = _text(value, "regex_extract")
    regex = _regex(pattern)
    which = _group(regex, group)
    if text is None:
        return None
    match = regex.search(text)
    if match is None:
        return None
    found: str | None = match.group(which)
    return found


# --------------------------------------------------------------------------- hashing


def _hash_key(value: Any) -> str:
    k = kind(value)
    if value is None or k in (K_ARR, K_OBJ):
        raise ValueError(f"expects a string or a number to hash, got {_describe(value)}")
    text = str.__str__(value) if k == K_STR else to_string(value)
    if len(text) > LIMITS.max_string_length:
        check_text(len(text), "hash")
    return text


def _salt(salt: Any) -> str:
    if salt is None:
        return ""
    if kind(salt) != K_STR:
        raise ValueError(f"the salt must be a string, got {_describe(salt)}")
    return str.__str__(salt)


def _digest(value: Any, salt: Any) -> bytes:
    key, prefix = _hash_key(value), _salt(salt)
    return hashlib.sha256((f"{prefix}:{key}" if prefix else key).encode()).digest()


def _buckets(value: Any) -> int:
    if type(value) in (int, float) and value == value and 1 <= value <= MAX_BUCKETS:  # noqa: SIM102
        if value == int(value):  # (after the range test: int() of inf would raise)
            return int(value)
    raise ValueError(f"buckets must be a whole number from 1 to {MAX_BUCKETS}, got {value!r}")


def bucket(value: Any, buckets: Any, salt: Any = None) -> int:
    """A stable bucket in ``[0, buckets)`` for the value (see BUCKET_FORMULA)."""
    count = _buckets(buckets)
    return int.from_bytes(_digest(value, salt)[:8], "big") % count


def sha256(value: Any, salt: Any = None) -> str:
    """The hex SHA-256 of the key (``salt + ":" + key`` with a salt), see BUCKET_FORMULA."""
    return _digest(value, salt).hex()


BUCKET_FORMULA: Final = (
    "int(first 8 bytes, big-endian, of sha256(utf8(text))) mod buckets, where text is "
    'salt + ":" + key with a salt and key alone without one, and key is the string itself or '
    'the number as JavaScript\'s String() writes it (42 and 42.0 give "42")'
)


# --------------------------------------------------------------------------- binding

Binder = Callable[[tuple[Any, ...]], Callable[..., Any]]


def _constant(constants: tuple[Any, ...], index: int) -> Any:
    return constants[index] if index < len(constants) else None


def _checking(*checks: tuple[int, Callable[[Any], Any]]) -> Callable[[Callable[..., Any]], Binder]:
    """A ``bind`` hook running ``check(value)`` on each listed argument that is a constant.

    A ValueError of a check refuses the rule at that argument; the function itself is used
    unchanged (it checks its arguments at run time too).
    """

    def binder_for(fn: Callable[..., Any]) -> Binder:
        def bind(constants: tuple[Any, ...]) -> Callable[..., Any]:
            for index, check in checks:
                if index < len(constants) and constants[index] is not NOT_CONSTANT:
                    try:
                        check(constants[index])
                    except ValueError as exc:
                        raise FunctionBindError(f"{fn.__name__}: {exc}", index) from exc
            return fn

        return bind

    return binder_for


def _bind_regex(fn: Callable[..., Any]) -> Binder:
    """Compile a constant pattern when the rule is compiled (refusing the rule if RE2 cannot)."""

    def bind(constants: tuple[Any, ...]) -> Callable[..., Any]:
        pattern = constants[1]
        if pattern is NOT_CONSTANT:
            return fn
        try:
            regex = _regex(pattern)
        except ValueError as exc:
            raise FunctionBindError(f"{fn.__name__}: {exc}", 1) from exc
        group = _constant(constants, 2)
        if fn is regex_extract and group is not NOT_CONSTANT:
            try:
                _group(regex, group)
            except ValueError as exc:
                raise FunctionBindError(f"{fn.__name__}: {exc}", 2) from exc
        return fn

    return bind


def _not_null_date(value: Any) -> None:
    parse_instant(value)


def _not_null_zone(value: Any) -> None:
    _zone(value)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Builtin:
    """One built-in function: its operator name, callable, arity, description, bind hook."""

    name: str
    fn: Callable[..., Any]
    arity: Arity
    description: str
    bind: Binder | None = None


def _dates(*indexes: int) -> list[tuple[int, Callable[[Any], Any]]]:
    return [(index, _not_null_date) for index in indexes]


_ZONE_ARG: Final = (1, _not_null_zone)
_UNIT_ARG: Final = (2, _unit)

BUILTINS: Final[tuple[Builtin, ...]] = (
    # dates and times
    Builtin(
        "date_parse",
        date_parse,
        1,
        "date_parse(value): the ISO-8601 date or date-time normalised to UTC, e.g. "
        '"2024-03-01T13:00:00+01:00" -> "2024-03-01T12:00:00Z" (no offset means UTC); '
        "an invalid date is an error",
        _checking(*_dates(0))(date_parse),
    ),
    Builtin(
        "is_date",
        is_date,
        1,
        "is_date(value): true if the value is an ISO-8601 date or date-time string, else false "
        "(never an error)",
    ),
    Builtin(
        "date_add",
        date_add,
        3,
        "date_add(instant, amount, unit): the instant plus amount units (seconds, minutes, "
        "hours, days, weeks; negative subtracts), normalised to UTC",
        _checking(*_dates(0), _UNIT_ARG)(date_add),
    ),
    Builtin(
        "date_diff",
        date_diff,
        3,
        "date_diff(later, earlier, unit): later - earlier in the unit (seconds, minutes, hours, "
        "days, weeks), fractional and negative when earlier is later",
        _checking(*_dates(0, 1), _UNIT_ARG)(date_diff),
    ),
    Builtin(
        "date_before",
        date_before,
        2,
        "date_before(a, b): true if instant a is strictly before instant b",
        _checking(*_dates(0, 1))(date_before),
    ),
    Builtin(
        "date_after",
        date_after,
        2,
        "date_after(a, b): true if instant a is strictly after instant b",
        _checking(*_dates(0, 1))(date_after),
    ),
    Builtin(
        "day_of_week",
        day_of_week,
        (1, 2),
        "day_of_week(instant, zone?): ISO day of the week in the IANA time zone (default UTC), "
        "1 = Monday to 7 = Sunday",
        _checking(*_dates(0), _ZONE_ARG)(day_of_week),
    ),
    Builtin(
        "hour_of_day",
        hour_of_day,
        (1, 2),
        "hour_of_day(instant, zone?): the hour (0-23) in the IANA time zone (default UTC)",
        _checking(*_dates(0), _ZONE_ARG)(hour_of_day),
    ),
    Builtin(
        "local_date",
        local_date,
        (1, 2),
        'local_date(instant, zone?): the calendar date "YYYY-MM-DD" in the IANA time zone '
        "(default UTC)",
        _checking(*_dates(0), _ZONE_ARG)(local_date),
    ),
    Builtin(
        "local_time",
        local_time,
        (1, 2),
        'local_time(instant, zone?): the wall-clock time "HH:MM" in the IANA time zone '
        '(default UTC); compares correctly as text, e.g. {"<": ["09:00", t, "17:30"]}',
        _checking(*_dates(0), _ZONE_ARG)(local_time),
    ),
    # strings
    Builtin("lower", lower, 1, "lower(text): the text in lower case (null gives null)"),
    Builtin("upper", upper, 1, "upper(text): the text in upper case (null gives null)"),
    Builtin(
        "trim",
        trim,
        1,
        "trim(text): the text without leading and trailing whitespace (null gives null)",
    ),
    Builtin("starts_with", starts_with, 2, "starts_with(text, prefix): true if text starts so"),
    Builtin("ends_with", ends_with, 2, "ends_with(text, suffix): true if text ends so"),
    Builtin("contains", contains, 2, "contains(text, part): true if part occurs in text"),
    Builtin(
        "length",
        length,
        1,
        "length(value): the characters of a string or the items of an array (null gives 0)",
    ),
    Builtin(
        "split",
        split,
        2,
        "split(text, separator): the pieces of text cut at each separator (non-empty); "
        "null gives []; at most MAX_ARRAY_ITEMS pieces",
    ),
    Builtin(
        "replace",
        replace,
        3,
        "replace(text, old, new): text with every occurrence of old replaced by new; the result "
        "is at most MAX_STRING_LENGTH characters",
    ),
    # regular expressions
    Builtin(
        "regex_match",
        regex_match,
        2,
        "regex_match(text, pattern): true if the whole text matches the RE2 pattern "
        "(linear time; flags inline, e.g. (?i))",
        _bind_regex(regex_match),
    ),
    Builtin(
        "regex_search",
        regex_search,
        2,
        "regex_search(text, pattern): true if the RE2 pattern matches somewhere in the text",
        _bind_regex(regex_search),
    ),
    Builtin(
        "regex_extract",
        regex_extract,
        (2, 3),
        "regex_extract(text, pattern, group?): the first match of the RE2 pattern, or of its "
        "capture group (number or name), null when nothing matches",
        _bind_regex(regex_extract),
    ),
    # hashing
    Builtin(
        "bucket",
        bucket,
        (2, 3),
        "bucket(key, buckets, salt?): a stable bucket 0..buckets-1 for the key (string or "
        f"number): {BUCKET_FORMULA}",
        _checking((1, _buckets), (2, _salt))(bucket),
    ),
    Builtin(
        "sha256",
        sha256,
        (1, 2),
        'sha256(key, salt?): the hex SHA-256 of utf8(key), or of utf8(salt + ":" + key) with a '
        "salt; key a string or a number (as JavaScript's String() writes it)",
        _checking((1, _salt))(sha256),
    ),
)


def register_builtins(registry: FunctionRegistry | None = None) -> None:
    """Register every built-in function in ``registry`` (default: the project registry).

    Functions already registered with the same callable are skipped, so calling it again
    is harmless. Raises ValueError if one of the names is taken by another function.
    """
    target = default_registry if registry is None else registry
    for builtin in BUILTINS:
        existing = target.get(builtin.name)
        if existing is not None and existing.fn is builtin.fn:
            continue
        target.register(
            builtin.name,
            builtin.fn,
            arity=builtin.arity,
            description=builtin.description,
            bind=builtin.bind,
        )


def names() -> Sequence[str]:
    """The built-in function names, in table order. Raises nothing."""
    return tuple(builtin.name for builtin in BUILTINS)
