"""XSS corpus (tests/rules_engine/data/xss_corpus.json): no payload reaches an effect as live
markup, whether it arrives in a context value or in a template body, in any format.

HTML outputs (html, markdown) are parsed and every element, attribute and URL checked
against the sanitiser's allow-list; text and json outputs must be declared as non-HTML
(text/plain, application/json) and keep the template's shape (no injected keys)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from rules_engine import engine, services
from rules_engine.rendering import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_PROTOCOLS,
    ALLOWED_TAGS,
    TemplateError,
    compile_template,
    render_template,
)

CORPUS: list[str] = json.loads(
    (Path(__file__).parent / "data" / "xss_corpus.json").read_text(encoding="utf-8")
)["payloads"]

# Templates that put a context value everywhere an author might: text, attribute values
# (quoted and in links), Markdown text and links, JSON string values.
INTERPOLATING = {
    "html": (
        '<p>{{ v }}</p><a href="{{ v }}" title="{{ v }}">{{ v }}</a>'
        '<a href="https://ok.example/?q={{ v|urlencode }}">q</a><td colspan="{{ v }}">x</td>'
    ),
    "markdown": "Hi {{ v }}\n\n* {{ v }}\n\n[link]({{ v }}) ![img]({{ v }}) **{{ v }}**",
    "text": "Hi {{ v }}",
    "json": '{"title": "{{ v }}", "nested": {"items": ["{{ v }}", 1]}}',
}
CONTENT_TYPES = {"html": "text/html", "markdown": "text/html", "text": "text/plain"}
# Characters browsers drop from a URL before reading its scheme (C0 controls, space, tab, LF).
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")


class _LiveMarkup(HTMLParser):
    """Collects every element, attribute or URL in an HTML fragment the allow-list forbids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"element <{tag}>")
        allowed = {*ALLOWED_ATTRIBUTES.get(tag, ()), *({"rel"} if tag == "a" else set())}
        for name, value in attrs:
            if name not in allowed:
                self.problems.append(f"attribute {name} on <{tag}>")
            elif name == "href" and value is not None:
                # A URL has a scheme only if it starts like one (WHATWG URL); else it is relative.
                scheme = _SCHEME.match(_URL_NOISE.sub("", value).lower())
                if scheme and scheme[1] not in ALLOWED_PROTOCOLS:
                    self.problems.append(f"URL scheme {scheme[1]}: in {value!r}")

    handle_startendtag = handle_starttag

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration {data!r}")


def live_markup(html: str) -> list[str]:
    """What in `html` a browser would treat as markup beyond the allow-list (empty: inert)."""
    inspector = _LiveMarkup()
    inspector.feed(html)
    inspector.close()
    problems = inspector.problems
    # Belt and braces: the parser above is not a browser, so no raw opener of a script-capable
    # element may be left in the text either.
    lowered = html.lower()
    problems += [f"raw {needle}" for needle in ("<script", "<svg", "<math", "<iframe", "<img")]
    problems = [p for p in problems if not p.startswith("raw ") or p[4:] in lowered]
    return problems


def assert_inert(format: str, content: Any, template_shape: Any = None) -> None:
    """The rendered content of `format` cannot act as markup."""
    if format in {"html", "markdown"}:
        assert isinstance(content, str)
        assert live_markup(content) == [], content
    elif format == "text":
        # Plain text, declared text/plain: clients display it as text (never innerHTML).
        assert isinstance(content, str)
    else:
        # JSON string leaves are text; a payload cannot add keys or change the structure.
        assert _shape(content) == _shape(template_shape), content


def _shape(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_shape(value) for value in node]
    return type(node).__name__


def test_the_checker_sees_live_markup() -> None:
    # the checker itself must find what it is meant to find
    assert live_markup('<p onclick="x()">a</p>') == ["attribute onclick on <p>"]
    assert live_markup('<a href=" JAVA\tSCRIPT:x()">a</a>') == [
        "URL scheme javascript: in ' JAVA\\tSCRIPT:x()'"
    ]
    assert live_markup("<script>x()</script>") == ["element <script>", "raw <script"]
    assert live_markup('<a href="/relative" rel="x">ok</a> <b>b</b> &lt;script&gt;') == []


@pytest.mark.parametrize("format", sorted(INTERPOLATING))
@pytest.mark.parametrize("payload", CORPUS)
def test_a_payload_in_a_context_value_is_inert(format: str, payload: str) -> None:
    # given a template interpolating a value everywhere, and the payload as that value
    body = INTERPOLATING[format]
    # when rendered
    rendered = render_template(format=format, body=body, context={"v": payload})
    # then the output is inert and declared with its content type
    assert rendered.content_type == CONTENT_TYPES.get(format, "application/json")
    assert_inert(format, rendered.content, json.loads(body) if format == "json" else None)


@pytest.mark.parametrize("format", ["html", "markdown", "text"])
@pytest.mark.parametrize("payload", CORPUS)
def test_a_payload_in_a_template_body_is_inert(format: str, payload: str) -> None:
    # given an author (or a stolen author account) writing the payload into a template body
    body = f"Hello {{{{ name }}}}. {payload} Bye."
    try:
        template = compile_template(format=format, body=body)
    except TemplateError:
        # refused at save time (e.g. template syntax inside the payload): never rendered
        return
    # when rendered
    rendered = template.render({"name": "Ada"})
    # then nothing in it is live markup
    assert_inert(format, rendered.content)


@pytest.mark.parametrize("payload", CORPUS)
def test_a_payload_in_a_json_template_body_keeps_the_shape(payload: str) -> None:
    body = json.dumps({"title": payload, "items": [payload, 2]})
    try:
        template = compile_template(format="json", body=body)
    except TemplateError:
        return
    rendered = template.render({})
    assert_inert("json", rendered.content, json.loads(body))


@pytest.fixture
def xss_entry_point(db: Any) -> str:
    """An entry point whose one rule shows a message in every format, each interpolating
    `v` from the context everywhere (INTERPOLATING)."""
    entry_point = services.entry_point_create(
        data={"key": "xss", "context_schema": {"type": "object"}}
    )
    for format, body in INTERPOLATING.items():
        services.template_create(data={"key": f"xss-{format}", "format": format, "body": body})
    services.rule_create(
        data={
            "name": "Show everything",
            "entry_point": entry_point,
            "condition": True,
            "actions": [
                {"type": "display_message", "params": {"template": f"xss-{format}"}}
                for format in INTERPOLATING
            ],
        }
    )
    return "xss"


@pytest.mark.django_db
def test_no_payload_reaches_a_decision_effect_as_live_markup(xss_entry_point: str) -> None:
    # NUL cannot be stored in PostgreSQL text or jsonb: the API and stream boundaries refuse
    # it with a 400 before any decision (tests/rules_engine/test_api.py), so no decision sees it.
    for payload in (p for p in CORPUS if "\x00" not in p):
        # when a real decision is made with the payload in the context
        decision = engine.execute(entry_point=xss_entry_point, context={"v": payload})
        # then every effect carries an inert, typed message
        assert len(decision.effects) == len(INTERPOLATING)
        for effect in decision.effects:
            message = effect["message"]
            format = message["format"]
            assert effect.get("render_error") is None, effect
            assert message["content_type"] == CONTENT_TYPES.get(format, "application/json")
            template_shape = json.loads(INTERPOLATING["json"]) if format == "json" else None
            assert_inert(format, message["content"], template_shape)
