"""A compiled "is this instance valid?" check for simple JSON Schemas, in front of jsonschema.

jsonschema's generic machinery (a new evolved validator per subschema, errors built as
generators) costs far more than the checks themselves, and nearly every context is valid.
`compile_fast_check(validator)` turns the schema of a Draft 2020-12 validator into nested
closures that only answer valid or not; `validate_context` returns no errors when the answer
is valid and asks jsonschema for the errors otherwise, so messages and paths never change.

The one rule: a check never says valid where jsonschema would report an error. Saying
invalid where jsonschema would not only costs a jsonschema run, so the check is allowed to be
conservative: a value of a Python type JSON does not produce (a tuple, a Decimal, a dict
subclass) is invalid wherever the schema constrains it, and an exception inside the check
(a format function raising, recursion too deep) makes the instance invalid, so jsonschema
then reproduces whatever happens.

Supported, with jsonschema 4's exact semantics (a false boolean or an instance of another
type leaves a keyword silent, as in jsonschema):

* types: `type` (a name or a list; "integer" accepts 1.0, "number" and "integer" refuse
  booleans);
* any instance: `enum`, `const` (jsonschema's own equality: True is not 1, 1 is 1.0),
  `format` (the validator's own FormatChecker, so exactly the formats it enforces),
  `allOf`, `anyOf`;
* numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`;
* strings: `minLength`, `maxLength`, `pattern` (`re.search`, as jsonschema);
* arrays: `items`, `prefixItems`, `minItems`, `maxItems`, `uniqueItems`;
* objects: `properties`, `patternProperties`, `additionalProperties`, `required`,
  `propertyNames`, `minProperties`, `maxProperties`, `dependentRequired`;
* boolean schemas `true` / `false` wherever a schema is expected.

Keywords jsonschema does not implement for Draft 2020-12 (`title`, `description`,
`examples`, `default`, `$comment`, `x-...`) are ignored, as jsonschema ignores them. Anything
else makes the whole schema unsupported (`compile_fast_check` returns None): references and
what they point into (`$ref`, `$dynamicRef`, `$defs`, anchors, a nested `$id` or `$schema`),
`oneOf`, `not`, `if`, `contains`, `dependentSchemas`, `unevaluatedItems`,
`unevaluatedProperties`, a validator of another draft or class, or a keyword value jsonschema
would not accept. `oneOf`, `not`, `if` and `contains` (with `maxContains`) are left out on
purpose: they turn a conservative "invalid" of a subschema into a wrong "valid".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.protocols import Validator

__all__ = ["FastCheck", "compile_fast_check"]

FastCheck = Callable[[Any], bool]

_NONE_TYPE: Final = type(None)

# Python types per JSON Schema type name: exact types, so bool (a subclass of int) is never a
# number and a dict subclass falls back to jsonschema.
_PY_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int, float),
    "boolean": (bool,),
    "null": (_NONE_TYPE,),
}
_ALL_JSON_TYPES: Final = ("object", "array", "string", "number", "boolean", "null")

# Keywords that make a schema depend on other documents or on where it sits: the checks below
# see one schema at a time, so any of these leaves the whole schema to jsonschema.
_REFERENCE_KEYWORDS: Final = frozenset(
    {
        "$ref",
        "$dynamicRef",
        "$recursiveRef",
        "$defs",
        "definitions",
        "$anchor",
        "$dynamicAnchor",
        "$recursiveAnchor",
    }
)
_ROOT_ONLY_KEYWORDS: Final = frozenset({"$id", "$schema"})

_ANY: Final = "any"
_OBJECT: Final = "object"
_ARRAY: Final = "array"
_STRING: Final = "string"
_NUMBER: Final = "number"


class _Unsupported(Exception):
    """The schema uses something the fast path does not implement."""


def _accept(instance: Any) -> bool:
    """The check of a schema that asserts nothing (`true`, `{}`): every value is valid."""
    return True


def _reject(instance: Any) -> bool:
    """The check of the `false` schema: no value is valid."""
    return False


def compile_fast_check(validator: Validator) -> FastCheck | None:
    """A function telling whether an instance is valid for `validator`, or None if unsupported.

    The function returns True only when `validator.iter_errors` would yield nothing; it may
    return False for an instance jsonschema accepts (then the caller runs jsonschema). None
    means the validator is not a Draft 2020-12 one or its schema uses a keyword outside the
    supported subset (see the module docstring). Never raises.
    """
    if type(validator) is not Draft202012Validator:
        return None
    try:
        node = _Compiler(validator).compile(validator.schema, root=True)
    except _Unsupported:
        return None
    except (TypeError, ValueError, RecursionError, re.error):
        # A schema that slipped past the meta-schema (a validator built without check_schema)
        # is left to jsonschema, which reports it its own way.
        return None

    def check(instance: Any) -> bool:
        try:
            return node(instance)
        except Exception:  # noqa: BLE001 - jsonschema re-runs and raises or reports the same
            return False

    return check


class _Compiler:
    """Compiles one validator's schema into nested closures; raises _Unsupported."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator
        self.keywords: Mapping[str, Any] = validator.VALIDATORS
        # Not part of the Validator protocol, but every jsonschema validator class has it.
        checker = getattr(validator, "format_checker", None)
        if checker is not None and not isinstance(checker, FormatChecker):
            raise _Unsupported("format checker of an unknown kind")
        self.format_checker: FormatChecker | None = checker

    def compile(self, schema: Any, *, root: bool = False) -> FastCheck:
        """The check for one (sub)schema: a boolean schema or a JSON object of keywords."""
        if schema is True:
            return _accept
        if schema is False:
            return _reject
        if not isinstance(schema, dict):
            raise _Unsupported("schema is neither an object nor a boolean")
        for keyword in schema:
            if keyword in _REFERENCE_KEYWORDS or (keyword in _ROOT_ONLY_KEYWORDS and not root):
                raise _Unsupported(keyword)
            if keyword in self.keywords and keyword not in _KEYWORD_COMPILERS:
                raise _Unsupported(keyword)

        checks: dict[str, list[FastCheck]] = {_ANY: [], _OBJECT: [], _ARRAY: [], _STRING: []}
        checks[_NUMBER] = []
        for keyword, value in schema.items():
            compiler = _KEYWORD_COMPILERS.get(keyword)
            if compiler is None:
                continue  # jsonschema does not implement it: an annotation
            applies_to, check = compiler(self, value, schema)
            if check is not None:
                checks[applies_to].append(check)
        return _dispatch(self._types(schema.get("type")), checks)

    def _types(self, value: Any) -> tuple[str, ...] | None:
        """The type names `type` allows, or None when the schema has no `type`."""
        if value is None:
            return None
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names:
            raise _Unsupported("type")
        for name in names:
            if name not in _PY_TYPES:
                raise _Unsupported(f"type {name!r}")
        return tuple(names)

    # ---- one function per keyword: (which instances it applies to, its check or None) ----

    def enum(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`enum`: equal (jsonschema's equality) to one of the listed values."""
        if not isinstance(value, list):
            raise _Unsupported("enum")
        generic = self._keyword_check("enum", value, schema)
        strings = frozenset(each for each in value if type(each) is str)
        if not strings or not all(type(each) in _JSON_VALUE_TYPES for each in value):
            return _ANY, generic

        # jsonschema compares a string with `==` whatever the other side, so for an exact str
        # membership in the set of the enum's strings is the same answer, without its loop.
        def enum_check(instance: Any) -> bool:
            if type(instance) is str:
                return instance in strings
            return generic(instance)

        return _ANY, enum_check

    def const(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`const`: equal (jsonschema's equality) to the value."""
        generic = self._keyword_check("const", value, schema)
        if type(value) is not str:
            return _ANY, generic

        def const_check(instance: Any) -> bool:
            if type(instance) is str:
                return instance == value
            return generic(instance)

        return _ANY, const_check

    def format(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`format`: accepted by the validator's FormatChecker, which knows its formats."""
        if not isinstance(value, str):
            raise _Unsupported("format")
        if self.format_checker is None:
            return _ANY, None
        conforms = self.format_checker.conforms

        # Asked every time rather than decided now: `conforms` also answers for formats the
        # checker does not know (True), and a format registered later is then enforced too.
        def format_check(instance: Any) -> bool:
            return conforms(instance, value)

        return _ANY, format_check

    def all_of(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`allOf`: valid under every subschema."""
        subchecks = self._subschemas("allOf", value)

        def all_of_check(instance: Any) -> bool:
            return all(check(instance) for check in subchecks)

        return _ANY, all_of_check

    def any_of(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`anyOf`: valid under at least one subschema."""
        subchecks = self._subschemas("anyOf", value)

        def any_of_check(instance: Any) -> bool:
            return any(check(instance) for check in subchecks)

        return _ANY, any_of_check

    def minimum(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`minimum` for numbers."""
        bound = _number("minimum", value)
        return _NUMBER, lambda instance: not instance < bound

    def maximum(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`maximum` for numbers."""
        bound = _number("maximum", value)
        return _NUMBER, lambda instance: not instance > bound

    def exclusive_minimum(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`exclusiveMinimum` for numbers (the 2020-12 number form)."""
        bound = _number("exclusiveMinimum", value)
        return _NUMBER, lambda instance: not instance <= bound

    def exclusive_maximum(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`exclusiveMaximum` for numbers (the 2020-12 number form)."""
        bound = _number("exclusiveMaximum", value)
        return _NUMBER, lambda instance: not instance >= bound

    def multiple_of(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`multipleOf` for numbers, by jsonschema's own function."""
        # jsonschema's float and Fraction arithmetic is subtle; its own function decides.
        _number("multipleOf", value)
        return _NUMBER, self._keyword_check("multipleOf", value, schema)

    def pattern(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`pattern` for strings: found anywhere (`re.search`), not matched whole."""
        if not isinstance(value, str):
            raise _Unsupported("pattern")
        search = re.compile(value).search
        return _STRING, lambda instance: search(instance) is not None

    def unique_items(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`uniqueItems` for arrays, by jsonschema's own function."""
        if not isinstance(value, bool):
            raise _Unsupported("uniqueItems")
        if not value:
            return _ARRAY, None
        return _ARRAY, self._keyword_check("uniqueItems", value, schema)

    def prefix_items(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`prefixItems` for arrays: item n valid under subschema n."""
        subchecks = self._subschemas("prefixItems", value)

        def prefix_items_check(instance: Any) -> bool:
            return all(check(item) for check, item in zip(subchecks, instance, strict=False))

        return _ARRAY, prefix_items_check

    def items(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`items` for arrays (2020-12: the items after `prefixItems`)."""
        if not isinstance(value, bool | dict):
            raise _Unsupported("items")  # the list form belongs to older drafts
        prefix = schema.get("prefixItems", [])
        skip = len(prefix) if isinstance(prefix, list) else 0
        subcheck = self.compile(value)
        if subcheck is _accept:
            return _ARRAY, None
        if subcheck is _reject:
            return _ARRAY, lambda instance: len(instance) <= skip
        if skip:
            return _ARRAY, lambda instance: all(subcheck(item) for item in instance[skip:])

        def items_check(instance: Any) -> bool:
            for item in instance:  # noqa: SIM110 - see _node: loops beat all() here
                if not subcheck(item):
                    return False
            return True

        return _ARRAY, items_check

    def required(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`required` for objects."""
        names = _names("required", value)
        if not names:
            return _OBJECT, None

        def required_check(instance: Any) -> bool:
            for name in names:  # noqa: SIM110 - see _node: loops beat all() here
                if name not in instance:
                    return False
            return True

        return _OBJECT, required_check

    def properties(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`properties` for objects: each present property valid under its subschema."""
        if not isinstance(value, dict):
            raise _Unsupported("properties")
        compiled = [(name, self.compile(subschema)) for name, subschema in value.items()]
        pairs = tuple((name, check) for name, check in compiled if check is not _accept)
        if not pairs:
            return _OBJECT, None
        missing = object()

        def properties_check(instance: Any) -> bool:
            for name, check in pairs:
                item = instance.get(name, missing)
                if item is not missing and not check(item):
                    return False
            return True

        return _OBJECT, properties_check

    def pattern_properties(
        self, value: Any, schema: dict[str, Any]
    ) -> tuple[str, FastCheck | None]:
        """`patternProperties` for objects: each key a pattern finds."""
        if not isinstance(value, dict):
            raise _Unsupported("patternProperties")
        pairs = tuple(
            (re.compile(pattern).search, self.compile(subschema))
            for pattern, subschema in value.items()
        )

        def pattern_properties_check(instance: Any) -> bool:
            for search, check in pairs:
                for name, item in instance.items():
                    if search(name) and not check(item):
                        return False
            return True

        return _OBJECT, pattern_properties_check

    def additional_properties(
        self, value: Any, schema: dict[str, Any]
    ) -> tuple[str, FastCheck | None]:
        """`additionalProperties` for objects: keys neither declared nor matched."""
        subcheck = self.compile(value)
        if subcheck is _accept:
            return _OBJECT, None
        declared = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        if not isinstance(declared, dict) or not isinstance(patterns, dict):
            raise _Unsupported("additionalProperties")
        known = frozenset(declared)
        # jsonschema joins the patterns into one regex for this keyword and skips it when the
        # joined text is empty (a lone "" pattern); the same rule here, however odd.
        joined_text = "|".join(patterns)
        joined = re.compile(joined_text).search if joined_text else None

        def additional_properties_check(instance: Any) -> bool:
            for name, item in instance.items():
                if name in known or (joined is not None and joined(name)):
                    continue
                if not subcheck(item):
                    return False
            return True

        return _OBJECT, additional_properties_check

    def property_names(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`propertyNames` for objects: every key valid under the subschema."""
        subcheck = self.compile(value)
        if subcheck is _accept:
            return _OBJECT, None
        return _OBJECT, lambda instance: all(subcheck(name) for name in instance)

    def dependent_required(
        self, value: Any, schema: dict[str, Any]
    ) -> tuple[str, FastCheck | None]:
        """`dependentRequired` for objects: a present key needs its companions."""
        if not isinstance(value, dict):
            raise _Unsupported("dependentRequired")
        rules = tuple((name, _names("dependentRequired", needed)) for name, needed in value.items())

        def dependent_required_check(instance: Any) -> bool:
            for name, needed in rules:
                if name in instance and not all(each in instance for each in needed):
                    return False
            return True

        return _OBJECT, dependent_required_check

    def type_(self, value: Any, schema: dict[str, Any]) -> tuple[str, FastCheck | None]:
        """`type`: no check of its own; `compile` dispatches on the instance's type."""
        return _ANY, None  # checked by the dispatch on the instance's type, see `compile`

    # ---- helpers ----

    def _subschemas(self, keyword: str, value: Any) -> tuple[FastCheck, ...]:
        """The checks of a non-empty list of subschemas (`allOf`, `anyOf`, `prefixItems`)."""
        if not isinstance(value, list) or not value:
            raise _Unsupported(keyword)
        return tuple(self.compile(subschema) for subschema in value)

    def _keyword_check(self, keyword: str, value: Any, schema: dict[str, Any]) -> FastCheck:
        """jsonschema's own function for a keyword that does not descend, as a boolean check."""
        function = self.keywords[keyword]
        validator = self.validator

        def keyword_check(instance: Any) -> bool:
            errors: Iterable[Any] = function(validator, value, instance, schema) or ()
            return next(iter(errors), None) is None

        return keyword_check


_KeywordCompiler = Callable[[_Compiler, Any, dict[str, Any]], tuple[str, FastCheck | None]]


def _length_bound(keyword: str, applies_to: str, *, most: bool) -> _KeywordCompiler:
    """The compiler of a length bound (`minLength`, `maxItems`, `minProperties`, ...).

    `len` counts code points of strings, items of arrays and properties of objects, as
    jsonschema does; `most` makes it an upper bound.
    """

    def compile_bound(
        compiler: _Compiler, value: Any, schema: dict[str, Any]
    ) -> tuple[str, FastCheck | None]:
        bound = _count(keyword, value)
        if most:
            return applies_to, lambda instance: not len(instance) > bound
        return applies_to, lambda instance: not len(instance) < bound

    return compile_bound


_KEYWORD_COMPILERS: Final[Mapping[str, _KeywordCompiler]] = {
    "type": _Compiler.type_,
    "enum": _Compiler.enum,
    "const": _Compiler.const,
    "format": _Compiler.format,
    "allOf": _Compiler.all_of,
    "anyOf": _Compiler.any_of,
    "minimum": _Compiler.minimum,
    "maximum": _Compiler.maximum,
    "exclusiveMinimum": _Compiler.exclusive_minimum,
    "exclusiveMaximum": _Compiler.exclusive_maximum,
    "multipleOf": _Compiler.multiple_of,
    "minLength": _length_bound("minLength", _STRING, most=False),
    "maxLength": _length_bound("maxLength", _STRING, most=True),
    "pattern": _Compiler.pattern,
    "items": _Compiler.items,
    "prefixItems": _Compiler.prefix_items,
    "minItems": _length_bound("minItems", _ARRAY, most=False),
    "maxItems": _length_bound("maxItems", _ARRAY, most=True),
    "uniqueItems": _Compiler.unique_items,
    "properties": _Compiler.properties,
    "patternProperties": _Compiler.pattern_properties,
    "additionalProperties": _Compiler.additional_properties,
    "required": _Compiler.required,
    "propertyNames": _Compiler.property_names,
    "minProperties": _length_bound("minProperties", _OBJECT, most=False),
    "maxProperties": _length_bound("maxProperties", _OBJECT, most=True),
    "dependentRequired": _Compiler.dependent_required,
}

_JSON_VALUE_TYPES: Final = frozenset({dict, list, str, int, float, bool, _NONE_TYPE})


def _number(keyword: str, value: Any) -> int | float:
    """A keyword's numeric value (not a bool); _Unsupported otherwise."""
    if type(value) not in (int, float):
        raise _Unsupported(keyword)
    return value


def _count(keyword: str, value: Any) -> int | float:
    """A keyword's non-negative count (`minLength`, `maxItems`, ...); _Unsupported otherwise."""
    # The meta-schema's non-negative integer admits 2.0 as well as 2; both compare the same.
    bound = _number(keyword, value)
    if bound < 0:
        raise _Unsupported(keyword)
    return bound


def _names(keyword: str, value: Any) -> tuple[str, ...]:
    """A keyword's list of property names; _Unsupported otherwise."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _Unsupported(keyword)
    return tuple(value)


def _dispatch(types: tuple[str, ...] | None, checks: dict[str, list[FastCheck]]) -> FastCheck:
    """One node's check: the instance's exact Python type selects which keyword checks run."""
    if types is None and not any(checks.values()):
        return _accept  # no assertion at all: jsonschema accepts any value, JSON or not
    names = _ALL_JSON_TYPES if types is None else types
    integral_floats_only = "integer" in names and "number" not in names
    by_type: dict[type, tuple[FastCheck, ...]] = {}
    for name in names:
        category = name if name in checks else (_NUMBER if name == "integer" else _ANY)
        for py_type in _PY_TYPES[name]:
            own = checks[category] if category != _ANY else []
            if py_type is float and integral_floats_only:
                own = [float.is_integer, *own]
            by_type[py_type] = (*own, *checks[_ANY])
    return _node(by_type)


def _node(by_type: dict[type, tuple[FastCheck, ...]]) -> FastCheck:
    """The node closure, specialised for the common shapes (one type, no keyword checks)."""
    if not any(by_type.values()):
        if len(by_type) == 1:
            (only,) = by_type
            return lambda instance: type(instance) is only
        allowed = frozenset(by_type)
        return lambda instance: type(instance) in allowed
    if len(by_type) == 1:
        ((only, checks),) = by_type.items()
        if len(checks) == 1:
            (single,) = checks
            return lambda instance: type(instance) is only and single(instance)

        def one_type_node(instance: Any) -> bool:
            if type(instance) is not only:
                return False
            for check in checks:  # noqa: SIM110 - see below
                if not check(instance):
                    return False
            return True

        return one_type_node
    select = by_type.get

    def node(instance: Any) -> bool:
        selected = select(type(instance))
        if selected is None:
            return False
        # A plain loop: all() over a generator costs a frame per call, on the hottest path.
        for check in selected:  # noqa: SIM110
            if not check(instance):
                return False
        return True

    return node
