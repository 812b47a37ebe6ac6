"""Message templates rendered safely in four formats: text, html, markdown and json.

Templates use the Django template language through a dedicated, locked-down `Engine`:

* no template loaders, so nothing can be read from disk (`include`/`extends` do not exist);
* only an allow-list of the default builtin tags and filters (`_ALLOWED_TEMPLATE_TAGS`,
  `_ALLOWED_FILTERS`); tags that expose server state or let an author switch escaping off
  (`load`, `debug`, `include`, `extends`, `csrf_token`, `url`, `static`, `autoescape`, ...) and
  filters that bypass escaping (`safe`, `safeseq`) are refused at compile time;
* `debug=False` and `string_if_invalid=""`: a missing value renders as an empty string.

The render context is JSON data. It is copied into read-only wrappers before rendering, so a
template can only look up keys on objects and integer indexes on lists: Django's fallback to
attributes and method calls finds nothing (`{{ data.clear }}` renders "" and mutates nothing).
Objects iterate over their keys and offer `items` for `{% for key, value in obj.items %}`; a
real key called `items` wins over it, as it does for dicts in Django. Scalars (str, int,
float, bool, None, and `datetime`/`date`/`time`/`Decimal` for contexts built in Python) are
passed as they are: they are immutable and their methods have no side effects. The copy is
made on every render; `freeze_context` makes it once for several templates rendered with the
same data.

Formats:

* `text`: autoescape off; the result is plain text and must be displayed as text.
* `html`: autoescape on, then the whole output sanitised by bleach (`ALLOWED_TAGS`,
  `ALLOWED_ATTRIBUTES`, http/https/mailto links only, disallowed tags stripped) and every link
  given `rel="noopener noreferrer nofollow"`. Bleach keeps the text inside a stripped element,
  so `<script>x()</script>` in a template body leaves the inert text `x()`.
* `markdown`: autoescape on (HTML in context values becomes text), then Markdown ("extra",
  "sane_lists"), then the same sanitiser. Markdown syntax inside context values is still
  Markdown (a value can add emphasis or an http link); it is sanitised like the body.
* `json`: the body is a JSON object or array; every string value (not keys) is a text
  template; numbers, booleans and null are kept. String values always render to strings.
"""

from __future__ import annotations

import datetime
import functools
import html
import json
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, cast

import bleach
import markdown
from bleach.linkifier import LinkifyFilter
from django.conf import settings
from django.template import (
    Context,
    Engine,
    Library,
    Template,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template.base import (
    TextNode,
    Token,
    TokenType,
    Variable,
    VariableNode,
    render_value_in_context,
)

from rules_engine.paths import json_path

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_PROTOCOLS",
    "ALLOWED_TAGS",
    "CONTENT_TYPES",
    "FORMATS",
    "CompiledTemplate",
    "FrozenContext",
    "RenderedTemplate",
    "TemplateError",
    "compile_template",
    "freeze_context",
    "render_template",
    "sanitize_html",
]

CONTENT_TYPES: Final[Mapping[str, str]] = {
    "text": "text/plain",
    "html": "text/html",
    "markdown": "text/html",
    "json": "application/json",
}
FORMATS: Final[frozenset[str]] = frozenset(CONTENT_TYPES)

ALLOWED_TAGS: Final[frozenset[str]] = frozenset(
    {
        "a", "b", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "i", "li", "ol", "p", "pre", "span", "strong", "u", "ul",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: Final[Mapping[str, list[str]]] = {
    "a": ["href", "title"],
    "th": ["colspan", "rowspan"],
    "td": ["colspan", "rowspan"],
}
ALLOWED_PROTOCOLS: Final[frozenset[str]] = frozenset({"http", "https", "mailto"})
LINK_REL: Final = "noopener noreferrer nofollow"

# Allow-lists rather than deny-lists, so tags or filters added by a future Django stay out
# until someone decides they are safe here.
_ALLOWED_TEMPLATE_TAGS: Final[frozenset[str]] = frozenset(
    {
        "comment", "cycle", "filter", "firstof", "for", "if", "ifchanged", "now", "regroup",
        "resetcycle", "spaceless", "templatetag", "verbatim", "widthratio", "with",
    }
)  # fmt: skip
# Tags Django ships (or that authors will try) that are refused, named in the error message.
# `autoescape` is here because switching escaping off would turn context data into markup.
_DISALLOWED_TEMPLATE_TAGS: Final[frozenset[str]] = frozenset(
    {
        "autoescape", "block", "csrf_token", "debug", "extends", "get_media_prefix",
        "get_static_prefix", "include", "load", "lorem", "querystring", "ssi", "static", "url",
    }
)  # fmt: skip
# `safe`/`safeseq` would bypass escaping; `pprint` shows Python reprs; `json_script` emits a
# <script> element, which no format can use.
_DISALLOWED_FILTERS: Final[frozenset[str]] = frozenset({"json_script", "pprint", "safe", "safeseq"})
_ALLOWED_FILTERS: Final[frozenset[str]] = frozenset(
    {
        "add", "addslashes", "capfirst", "center", "cut", "date", "default", "default_if_none",
        "dictsort", "dictsortreversed", "divisibleby", "escape", "escapejs", "escapeseq",
        "filesizeformat", "first", "floatformat", "force_escape", "get_digit", "iriencode",
        "join", "last", "length", "linebreaks", "linebreaksbr", "linenumbers", "ljust", "lower",
        "make_list", "phone2numeric", "pluralize", "random", "rjust", "slice", "slugify",
        "stringformat", "striptags", "time", "timesince", "timeuntil", "title",
        "truncatechars", "truncatechars_html", "truncatewords", "truncatewords_html",
        "unordered_list", "upper", "urlencode", "urlize", "urlizetrunc", "wordcount",
        "wordwrap", "yesno",
    }
)  # fmt: skip

_MARKDOWN_EXTENSIONS: Final = ("extra", "sane_lists")
_TEMPLATE_MARKERS: Final = ("{{", "{%", "{#")


class TemplateError(Exception):
    """A template that cannot be used: bad syntax, a refused tag or filter, invalid JSON.

    `message` says what is wrong; `line` is the 1-based line in the body when known.
    Rendering failures (a filter raising on its argument) are reported with this class too,
    so callers handle one exception type for author mistakes.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(message if line is None else f"{message} (line {line})")


@dataclass(frozen=True, slots=True)
class RenderedTemplate:
    """The result of rendering: the format, the content and the HTTP content type."""

    format: str
    content: str | dict[str, Any] | list[Any]
    content_type: str


# --------------------------------------------------------------------------------------------
# The engine


def _build_library() -> Library:
    library = Library()
    for source in (defaulttags.register, defaultfilters.register):
        library.tags.update(
            (name, func) for name, func in source.tags.items() if name in _ALLOWED_TEMPLATE_TAGS
        )
        library.filters.update(
            (name, func) for name, func in source.filters.items() if name in _ALLOWED_FILTERS
        )
    return library


class _SandboxEngine(Engine):
    """A Django `Engine` whose only builtin library is the allow-listed one."""

    # Nothing is imported by path: `get_template_builtins` supplies the filtered library.
    default_builtins = []

    def get_template_builtins(self, builtins: list[str]) -> list[Library]:
        return [_build_library()]


_ENGINE: Final = _SandboxEngine(
    dirs=[],
    app_dirs=False,
    context_processors=[],
    debug=False,
    # An explicit empty list: `None` would install the filesystem loader.
    loaders=[],
    string_if_invalid="",
    libraries={},
    builtins=[],
    autoescape=True,
)


def _compile_django(body: str) -> Template:
    try:
        template = _ENGINE.from_string(body)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc) from exc
    # Text and {{ variables }} only (most message templates): rendered without the copy and
    # the wrappers a tag may need (see _render_django).
    plain = all(type(node) in _PLAIN_NODES for node in template.nodelist)
    setattr(template, _PLAIN_ATTR, _plain_plan(template) if plain else False)
    return template


# A text node's text, or a variable node with its plain lookup path (None: no direct lookup).
_PlanPart = str | tuple[VariableNode, tuple[str, ...] | None]


def _plain_plan(template: Template) -> tuple[_PlanPart, ...]:
    """A plain template's nodes as rendered directly: each text node as its text, each
    variable node with its lookup path when it is a plain path without filters (None
    otherwise)."""
    plan: list[_PlanPart] = []
    for node in template.nodelist:
        if isinstance(node, TextNode):
            plan.append(node.s)
            continue
        assert isinstance(node, VariableNode)
        expression = node.filter_expression
        var = expression.var
        path = None
        if (
            not expression.filters
            and isinstance(var, Variable)
            and var.lookups
            and not var.translate
            and var.message_context is None
        ):
            path = tuple(var.lookups)
        plan.append((node, path))
    return tuple(plan)


_PLAIN_NODES = (TextNode, VariableNode)
_PLAIN_ATTR = "_verdict_plain"


def _syntax_error(exc: TemplateSyntaxError) -> TemplateError:
    # The parser attaches the offending token even with debug off; it carries the line.
    token = getattr(exc, "token", None)
    line = getattr(token, "lineno", None)
    if isinstance(token, Token) and token.token_type is TokenType.BLOCK:
        command = next(iter(token.split_contents()), "")
        if command in _DISALLOWED_TEMPLATE_TAGS:
            message = f"tag {{% {command} %}} is not allowed in message templates"
            return TemplateError(message, line)
    message = str(exc)
    for name in _DISALLOWED_FILTERS:
        if message == f"Invalid filter: '{name}'":
            return TemplateError(f"filter '{name}' is not allowed in message templates", line)
    return TemplateError(message, line)


# --------------------------------------------------------------------------------------------
# Read-only context data


class _JsonObject:
    """A read-only JSON object: key lookup, iteration over keys, `items` pairs; nothing else."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: object) -> Any:
        if isinstance(key, str):
            return self._data[key]
        raise KeyError(key)

    @property
    def items(self) -> _JsonList:
        """[key, value] pairs, for `{% for key, value in obj.items %}`."""
        return _JsonList(tuple(_JsonList(pair) for pair in self._data.items()))

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _JsonObject) and other._data == self._data

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return _json_text(self)

    __repr__ = __str__


class _JsonList:
    """A read-only JSON array: integer index and slice lookup, iteration; nothing else."""

    __slots__ = ("_data",)

    def __init__(self, data: tuple[Any, ...]) -> None:
        self._data = data

    def __getitem__(self, index: object) -> Any:
        # A str index raises TypeError so Django retries with int(bit), as it does for lists.
        if isinstance(index, bool) or not isinstance(index, int | slice):
            raise TypeError("list indices must be integers")
        if isinstance(index, slice):
            return _JsonList(self._data[index])
        return self._data[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, value: object) -> bool:
        return value in self._data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _JsonList) and other._data == self._data

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return _json_text(self)

    __repr__ = __str__


_SCALAR_TYPES: Final = (datetime.datetime, datetime.date, datetime.time, Decimal)
# Exact types a value keeps as it is. Decoded JSON holds only these plus dict and list, so
# `_freeze` can test one set membership per value instead of a chain of isinstance checks.
_EXACT_SCALARS: Final[frozenset[type]] = frozenset(
    {str, int, float, bool, type(None), *_SCALAR_TYPES}
)


class _NotPlainJson(Exception):
    """Raised by `_freeze` for anything but exact dict, list and scalar types."""


def _freeze(value: Any) -> Any:
    """Copy decoded JSON (exact dict, list and scalar types) into read-only wrappers.

    The fast path of every render: no path bookkeeping and no isinstance chains. Anything else
    (subclasses, tuples, other mappings, values that are not JSON data) raises _NotPlainJson
    and the caller freezes the whole context again with `_freeze_checked`. For exact types
    both give the same result.
    """
    cls = type(value)
    if cls is dict:
        frozen: dict[str, Any] = {}
        for key, child in value.items():
            if type(key) is not str:
                raise _NotPlainJson
            frozen[key] = child if type(child) in _EXACT_SCALARS else _freeze(child)
        return _JsonObject(frozen)
    if cls is list:
        return _JsonList(
            tuple([child if type(child) in _EXACT_SCALARS else _freeze(child) for child in value])
        )
    if cls in _EXACT_SCALARS:
        return value
    raise _NotPlainJson


def _freeze_checked(value: Any, path: list[str | int]) -> Any:
    """Copy JSON-like data into read-only wrappers; raise TypeError naming the path otherwise."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        # A str subclass could be SafeString (skipping escaping) or carry methods; copy it.
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    # Exact types only: a subclass could add methods that a template would call.
    if type(value) in _SCALAR_TYPES:
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, child in value.items():
            if not isinstance(key, str):
                raise TypeError(f"context key {key!r} at {json_path(path)} is not a string")
            frozen[str.__str__(key)] = _freeze_checked(child, [*path, key])
        return _JsonObject(frozen)
    if isinstance(value, list | tuple):
        return _JsonList(tuple(_freeze_checked(child, [*path, i]) for i, child in enumerate(value)))
    raise TypeError(f"context value at {json_path(path)} is not JSON data: {type(value).__name__}")


def _json_default(value: Any) -> Any:
    if isinstance(value, _JsonObject):
        return value._data
    if isinstance(value, _JsonList):
        return list(value._data)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _json_text(value: _JsonObject | _JsonList) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _frozen_context(context: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(context, Mapping):
        raise TypeError(f"context must be a mapping, not {type(context).__name__}")
    try:
        root = _freeze(context)
    except _NotPlainJson:
        # Contexts built in Python (tuples, subclasses, other mappings) and data that is not
        # JSON take the general path, which also names the offending path in its TypeError.
        root = _freeze_checked(context, [])
    assert isinstance(root, _JsonObject)
    return root._data


@dataclass(frozen=True, slots=True, eq=False)
class FrozenContext:
    """A render context frozen once, for rendering several templates with the same data.

    Build it with `freeze_context`. It is a snapshot: changing the mapping it was built from
    afterwards does not change it, and templates cannot change it either.
    """

    _data: dict[str, Any] = field(repr=False)


def freeze_context(context: Mapping[str, Any]) -> FrozenContext:
    """Freeze `context` (a JSON object) once; `render` then skips the per-call copy.

    Raises TypeError for a context that is not JSON data, as `render` does.
    """
    return FrozenContext(_frozen_context(context))


def _render_django(template: Template, data: dict[str, Any], *, autoescape: bool) -> str:
    plan: tuple[_PlanPart, ...] | bool = getattr(template, _PLAIN_ATTR, False)
    if isinstance(plan, tuple):
        # Text and variables only: nothing writes into the context, so `data` itself serves
        # (its values are read-only), and the nodes render as Template.render would have them
        # (the template bound: a missing variable reads the engine's string_if_invalid).
        context = Context(data, autoescape=autoescape)
        context.template = template
        context.template_name = template.name
        return "".join(
            [
                part if isinstance(part, str) else _variable_text(*part, data, context)
                for part in plan
            ]
        )
    # A fresh top-level dict per render: `{% now ... as x %}` and friends write into it.
    rendered = template.render(Context(dict(data), autoescape=autoescape))
    # Django returns SafeString; handing that out would let unescaped text output be trusted
    # as HTML by whoever renders it next, so return a plain str.
    return str.__str__(rendered)


_MISSING: Final = object()


def _variable_text(
    node: VariableNode, path: tuple[str, ...] | None, data: dict[str, Any], context: Context
) -> str:
    """What `node.render(context)` gives, with the common cases taken directly: a plain path
    to a value of the context, a string or integer value. Anything else (a missing key, a
    list index, filters, other types, thousands grouping on) renders as Django renders it."""
    value: Any = _MISSING
    if path is not None:
        value = _path_value(data, path)
    if value is _MISSING:
        try:
            value = node.filter_expression.resolve(context)
        except UnicodeDecodeError:  # as VariableNode.render
            return ""
    cls = type(value)
    if cls is str:
        # localize() leaves strings as they are; escape() is html.escape marked safe.
        return html.escape(value) if context.autoescape else value
    if cls is int and not settings.USE_THOUSAND_SEPARATOR:
        # number_format() gives an integer's digits when nothing groups them.
        return str(value)
    return render_value_in_context(value, context)


def _path_value(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` through the context's objects, or _MISSING when a step is not an
    object key (Django's lookup then decides: list indexes, `items`, builtins, defaults)."""
    value = data.get(path[0], _MISSING)
    for key in path[1:]:
        if type(value) is not _JsonObject:
            return _MISSING
        value = value._data.get(key, _MISSING)
    return value


# --------------------------------------------------------------------------------------------
# Sanitising


def _link_attributes(
    attrs: MutableMapping[tuple[str | None, str], str], new: bool = False
) -> MutableMapping[tuple[str | None, str], str] | None:
    # Returning None for new links stops the linkifier turning bare URLs in text into links:
    # only links the author wrote exist, and each gets the rel.
    if new:
        return None
    attrs[(None, "rel")] = LINK_REL
    return attrs


_CLEANERS = threading.local()


def _cleaner() -> bleach.Cleaner:
    # bleach.Cleaner keeps parser state, so each thread needs its own.
    cleaner: bleach.Cleaner | None = getattr(_CLEANERS, "cleaner", None)
    if cleaner is None:
        cleaner = bleach.Cleaner(
            tags=ALLOWED_TAGS,
            attributes=dict(ALLOWED_ATTRIBUTES),
            protocols=ALLOWED_PROTOCOLS,
            strip=True,
            strip_comments=True,
            # bleach documents a callback returning None as "make no link"; its stubs type the
            # return as a mapping only, hence the cast.
            filters=[functools.partial(LinkifyFilter, callbacks=[cast(Any, _link_attributes)])],
        )
        _CLEANERS.cleaner = cleaner
    return cleaner


_CONVERTERS = threading.local()


def _markdown_to_html(source: str) -> str:
    # Building a markdown.Markdown (what `markdown.markdown` does per call) registers every
    # extension again and was about a quarter of a Markdown render; one converter per thread
    # is reused instead (it keeps state while converting, so threads cannot share one).
    converter: markdown.Markdown | None = getattr(_CONVERTERS, "markdown", None)
    if converter is None:
        converter = markdown.Markdown(extensions=list(_MARKDOWN_EXTENSIONS))
        _CONVERTERS.markdown = converter
    # `convert` leaves link references, footnotes, abbreviations and stashed HTML behind.
    # Resetting before also covers a previous conversion that raised half-way; resetting
    # after drops the last message's text instead of holding it until the next render.
    converter.reset()
    try:
        return converter.convert(source)
    finally:
        converter.reset()


def sanitize_html(html: str) -> str:
    """Reduce HTML to the allow-list and give every link a safe `rel`; never raises."""
    return _cleaner().clean(html)


# Messages repeat: most renders of a template give the same text for many subjects, and
# converting and sanitising are pure functions of that text (html5lib parsing is most of a
# Markdown message's cost). Small outputs are remembered per process; large ones are not, so
# the memory held stays bounded (at most _MEMO_SIZE x _MEMO_MAX_CHARS characters per cache).
_MEMO_SIZE: Final = 1024
_MEMO_MAX_CHARS: Final = 8192


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _sanitize_memo(html: str) -> str:
    return sanitize_html(html)


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _markdown_memo(source: str) -> str:
    return sanitize_html(_markdown_to_html(source))


def _sanitized(html: str) -> str:
    return _sanitize_memo(html) if len(html) <= _MEMO_MAX_CHARS else sanitize_html(html)


def _markdown_sanitized(source: str) -> str:
    if len(source) <= _MEMO_MAX_CHARS:
        return _markdown_memo(source)
    return sanitize_html(_markdown_to_html(source))


# --------------------------------------------------------------------------------------------
# Compiled templates


@dataclass(frozen=True, slots=True, eq=False)
class CompiledTemplate:
    """A template compiled for one format; immutable, safe to cache and share across threads.

    Build it with `compile_template`; `render` raises TypeError for a context that is not
    JSON data and TemplateError when the template fails while rendering.
    """

    format: str
    content_type: str
    # A Django Template, or for json the parsed document with Templates at string leaves.
    _root: Any = field(repr=False)

    def render(self, context: Mapping[str, Any] | FrozenContext) -> RenderedTemplate:
        """Render with `context` (a JSON object); raise TypeError or TemplateError as above.

        A caller rendering several templates with the same data can pass `freeze_context(...)`
        once instead of the mapping, so the copy is made once rather than per template.
        """
        # No hidden reuse of an earlier copy keyed on the context object's identity: callers
        # (tests included) change a dict in place between calls, and checking that it did not
        # change (repr, a walk) costs about as much as `_freeze` itself, so reuse stays
        # explicit.
        data = context._data if isinstance(context, FrozenContext) else _frozen_context(context)
        try:
            content = self._render(data)
        except TemplateError:
            raise
        except Exception as exc:
            # Author-written templates fail in many ways at render time (a filter given a
            # bad argument, a loop unpacking the wrong number of values); report them as the
            # template's fault rather than crashing the caller.
            raise TemplateError(f"template failed to render: {exc}") from exc
        return RenderedTemplate(format=self.format, content=content, content_type=self.content_type)

    def _render(self, data: dict[str, Any]) -> str | dict[str, Any] | list[Any]:
        if self.format == "text":
            return _render_django(self._root, data, autoescape=False)
        if self.format == "html":
            return _sanitized(_render_django(self._root, data, autoescape=True))
        if self.format == "markdown":
            source = _render_django(self._root, data, autoescape=True)
            return _markdown_sanitized(source)
        rendered = _render_json_node(self._root, data)
        assert isinstance(rendered, dict | list)
        return rendered


def _compile_json(body: str) -> Any:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            exc.lineno,
        ) from exc
    if not isinstance(document, dict | list):
        raise TemplateError("a json template must be a JSON object or array", 1)
    return _compile_json_node(document, [])


def _compile_json_node(node: Any, path: list[str | int]) -> Any:
    if isinstance(node, dict):
        return {key: _compile_json_node(value, [*path, key]) for key, value in node.items()}
    if isinstance(node, list):
        return [_compile_json_node(value, [*path, index]) for index, value in enumerate(node)]
    if isinstance(node, str) and any(marker in node for marker in _TEMPLATE_MARKERS):
        try:
            return _compile_django(node)
        except TemplateError as exc:
            # The line inside one string says little about where it is in the body: the
            # JSON path does.
            raise TemplateError(f"{json_path(path)}: {exc.message}") from exc
    # Strings without template syntax render to themselves; keep them as constants.
    return node


def _render_json_node(node: Any, data: dict[str, Any]) -> Any:
    if isinstance(node, Template):
        return _render_django(node, data, autoescape=False)
    if isinstance(node, dict):
        return {key: _render_json_node(value, data) for key, value in node.items()}
    if isinstance(node, list):
        return [_render_json_node(value, data) for value in node]
    return node


def compile_template(*, format: str, body: str) -> CompiledTemplate:
    """Compile `body` for `format` (text, html, markdown, json).

    Raises TemplateError for an unknown format, a syntax error, a refused tag or filter, or
    (json) a body that is not a valid JSON object or array.
    """
    if format not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise TemplateError(f"unknown template format {format!r}; expected one of: {known}")
    if not isinstance(body, str):
        raise TemplateError(f"template body must be a string, not {type(body).__name__}")
    root = _compile_json(body) if format == "json" else _compile_django(body)
    return CompiledTemplate(format=format, content_type=CONTENT_TYPES[format], _root=root)


@functools.lru_cache(maxsize=256)
def _compile_cached(format: str, body: str) -> CompiledTemplate:
    return compile_template(format=format, body=body)


def render_template(
    *, format: str, body: str, context: Mapping[str, Any] | FrozenContext
) -> RenderedTemplate:
    """Compile (cached by format and body) and render in one call.

    Raises TemplateError like `compile_template` and `CompiledTemplate.render`, and TypeError
    for a context that is not JSON data.
    """
    return _compile_cached(format, body).render(context)
