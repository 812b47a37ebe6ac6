"""Context validation against an entry point's JSON Schema.

Schemas are checked with the validator class their `$schema` names (Draft 2020-12 when there
is none) and validated with format checking on. Only the formats jsonschema checks with the
installed packages are enforced: `date`, `time`, `email`, `idn-email`, `ipv4`, `ipv6`, `regex`,
`uuid`, and `idn-hostname` (through `idna`, which httpx installs); others (`date-time`, `uri`,
`hostname`, ...) pass unchecked.

Most contexts are valid, so a compiled check (`rules_engine.schema_fastpath`) answers "valid?"
first, once compiled per validator; only when it says no, or cannot judge the schema, does
jsonschema run and produce the errors below.

Errors point at the offending value with a JSON path (`$.cart.items[0].price`), with two
refinements so a path always names the property to fix:

* a missing required property points at the property itself: `$.user.email` with
  "'email' is a required property";
* `additionalProperties: false` gives one error per unexpected property, at that property:
  `$.user.nickname` with "Additional properties are not allowed ('nickname' was unexpected)".

Errors of `anyOf`/`oneOf` are reported once, at their own level, with jsonschema's summary
message rather than one error per failed branch. Errors are sorted by path, then message.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from rules_engine.paths import json_path
from rules_engine.schema_fastpath import FastCheck, compile_fast_check

__all__ = [
    "CACHE_SIZE",
    "ContextError",
    "SchemaError",
    "check_schema",
    "get_validator",
    "validate_context",
]

CACHE_SIZE: Final = 256
NOT_AN_OBJECT: Final = "context must be a JSON object"


@dataclass(frozen=True, order=True)
class ContextError:
    """One way the context fails its schema: where (JSON path) and what is wrong."""

    path: str
    message: str


class SchemaError(Exception):
    """A schema that is not a valid JSON Schema; `path` is where in the schema, `message` why."""

    def __init__(self, message: str, path: str = "$") -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}")


def _canonical_text(schema: Any) -> str:
    if not isinstance(schema, dict):
        raise SchemaError("schema must be a JSON object")
    try:
        return json.dumps(
            schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except TypeError as exc:
        raise SchemaError(f"schema is not JSON data: {exc}") from exc
    except ValueError as exc:
        # json words this differently across Python versions; say it once, stably.
        raise SchemaError("schema is not JSON data: NaN and Infinity are not JSON numbers") from exc


def _validator_class(schema: dict[str, Any]) -> type[Validator]:
    # An unknown `$schema` falls back to the default rather than failing: what it declares
    # is still checked against the Draft 2020-12 meta-schema.
    return validator_for(schema, default=Draft202012Validator)


def _check(schema: dict[str, Any]) -> type[Validator]:
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except jsonschema_exceptions.SchemaError as exc:
        raise SchemaError(exc.message, json_path(exc.absolute_path)) from exc
    return cls


def check_schema(schema: dict[str, Any]) -> None:
    """Check that `schema` is a valid JSON Schema; raise SchemaError (message, path) if not."""
    _canonical_text(schema)
    _check(schema)


_CACHE: OrderedDict[str, Validator] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def get_validator(schema: dict[str, Any]) -> Validator:
    """The validator for `schema`, built once per distinct schema; raise SchemaError if invalid.

    Schemas are keyed by the SHA-256 of their canonical JSON (sorted keys), so equal schemas
    share one validator whatever their key order. The cache keeps the `CACHE_SIZE` most
    recently used validators.
    """
    text = _canonical_text(schema)
    key = hashlib.sha256(text.encode()).hexdigest()
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    # Built from the canonical text, so later changes to the caller's dict cannot reach it.
    own_copy = json.loads(text)
    validator = _check(own_copy)(own_copy, format_checker=FormatChecker())
    with _CACHE_LOCK:
        # Another thread may have built it meanwhile; keep the first so callers agree.
        validator = _CACHE.setdefault(key, validator)
        _CACHE.move_to_end(key)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return validator


def validate_context(
    *, schema: dict[str, Any] | None, context: Any, validator: Validator | None = None
) -> list[ContextError]:
    """Every way `context` fails `schema`, sorted by path then message; [] when it is valid.

    `schema` None or `{}` accepts any JSON object; a context that is not a JSON object is
    always one error at `$`. A caller holding the schema's compiled `validator` (the ruleset
    cache does) passes it to skip the cache lookup; a valid context is usually confirmed by the
    validator's compiled fast check alone. Raises SchemaError for an invalid schema,
    including a `$ref` that cannot be resolved (found only when validation reaches it).
    """
    if validator is None and schema:
        validator = get_validator(schema)
    if not isinstance(context, dict):
        return [ContextError("$", NOT_AN_OBJECT)]
    if validator is None:
        return []
    fast_check = _fast_check(validator)
    if fast_check is not None and fast_check(context):
        return []
    try:
        errors = [item for error in validator.iter_errors(context) for item in _explain(error)]
    except Unresolvable as exc:
        raise SchemaError(f"cannot resolve $ref {exc.ref!r}") from exc
    return sorted(set(errors))


# The ruleset cache hands validators in directly, so compiled checks are found by the validator
# object itself. Validators are unhashable (no WeakKeyDictionary): the key is id(), the entry
# holds a weak reference that is checked on lookup and whose callback drops the entry, so an
# id reused after a validator dies never finds the old check.
_FAST_CHECKS: dict[int, tuple[weakref.ref[Validator], FastCheck | None]] = {}


def _fast_check(validator: Validator) -> FastCheck | None:
    """The compiled validity check for `validator`, compiled on first use; None if unsupported."""
    checks = _FAST_CHECKS
    key = id(validator)
    entry = checks.get(key)
    if entry is not None and entry[0]() is validator:
        return entry[1]
    check = compile_fast_check(validator)

    # Bound to this dict rather than the module global, which is gone at interpreter exit.
    def forget(dead: weakref.ref[Validator]) -> None:
        current = checks.get(key)
        if current is not None and current[0] is dead:
            checks.pop(key, None)

    try:
        ref = weakref.ref(validator, forget)
    except TypeError:
        return check  # cannot be watched for its end, so not cached
    # Two threads may compile the same validator at once; both checks are equivalent.
    checks[key] = (ref, check)
    return check


def _explain(error: ValidationError) -> Iterator[ContextError]:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = _missing_property(error)
        if missing is not None:
            path.append(missing)
    elif error.validator == "additionalProperties" and error.validator_value is False:
        extras = _additional_properties(error)
        if extras:
            for name in extras:
                message = f"Additional properties are not allowed ({name!r} was unexpected)"
                yield ContextError(json_path([*path, name]), message)
            return
    yield ContextError(json_path(path), _message(error))


# jsonschema's messages start with the instance's Python repr: `None is not of type 'string'`,
# or a whole 4 KB array before "is too long". Python-only spellings become JSON's, and a long
# value is described instead of repeated.
_PYTHON_SPELLINGS = {"None": "null", "True": "true", "False": "false"}
_LONGEST_SHOWN = 80


def _message(error: ValidationError) -> str:
    message: str = error.message
    shown = repr(error.instance)
    if not message.startswith(shown):
        return message
    rest = message[len(shown) :]
    if shown in _PYTHON_SPELLINGS and isinstance(error.instance, bool | None):
        return _PYTHON_SPELLINGS[shown] + rest
    if len(shown) <= _LONGEST_SHOWN:
        return message
    instance = error.instance
    if isinstance(instance, list):
        return f"the array of {len(instance):,} items{rest}"
    if isinstance(instance, dict):
        return f"the object of {len(instance):,} keys{rest}"
    if isinstance(instance, str):
        return f"the string of {len(instance):,} characters{rest}"
    return message


def _missing_property(error: ValidationError) -> str | None:
    # jsonschema reports one error per missing name but does not expose the name; match the
    # message it builds for each candidate rather than parsing it.
    if not isinstance(error.instance, dict) or not isinstance(error.validator_value, list):
        return None
    for name in error.validator_value:
        if name not in error.instance and error.message == f"{name!r} is a required property":
            return str(name)
    return None


def _additional_properties(error: ValidationError) -> list[str]:
    # The same rule jsonschema applies: not a declared property and no patternProperties match.
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance if isinstance(error.instance, dict) else {}
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        name
        for name in instance
        if name not in declared and not any(re.search(pattern, name) for pattern in patterns)
    ]
