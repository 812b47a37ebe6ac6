"""Tests for rules_engine.rendering: safe message templates in text, html, markdown and json."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import markdown
import pytest
from django.utils.safestring import mark_safe

from rules_engine import rendering
from rules_engine.rendering import (
    CompiledTemplate,
    FrozenContext,
    RenderedTemplate,
    TemplateError,
    compile_template,
    freeze_context,
    render_template,
)

REL = 'rel="noopener noreferrer nofollow"'


def render(format: str, body: str, context: dict[str, Any] | None = None) -> Any:
    return compile_template(format=format, body=body).render(context or {}).content


# --------------------------------------------------------------------------------------------
# API


def test_compile_returns_a_compiled_template_for_each_format() -> None:
    # Given one body per format
    bodies = {"text": "hi", "html": "<p>hi</p>", "markdown": "hi", "json": '{"a": "hi"}'}

    # When each is compiled
    compiled = {fmt: compile_template(format=fmt, body=body) for fmt, body in bodies.items()}

    # Then each is a CompiledTemplate of that format
    assert {fmt: (type(c), c.format) for fmt, c in compiled.items()} == {
        "text": (CompiledTemplate, "text"),
        "html": (CompiledTemplate, "html"),
        "markdown": (CompiledTemplate, "markdown"),
        "json": (CompiledTemplate, "json"),
    }


def test_compiled_template_is_frozen() -> None:
    # Given a compiled template
    compiled = compile_template(format="text", body="hi")

    # When its format is reassigned / Then the dataclass refuses
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.format = "html"  # type: ignore[misc]


def test_unknown_format_is_a_template_error() -> None:
    # Given a format that does not exist
    # When it is compiled / Then TemplateError names the known formats
    with pytest.raises(TemplateError) as caught:
        compile_template(format="xml", body="<a/>")
    assert caught.value.message == (
        "unknown template format 'xml'; expected one of: html, json, markdown, text"
    )
    assert caught.value.line is None


def test_rendered_template_is_frozen() -> None:
    # Given a rendered template
    rendered = render_template(format="text", body="hi", context={})

    # When a field is assigned / Then the dataclass refuses
    with pytest.raises(dataclasses.FrozenInstanceError):
        rendered.content = "changed"  # type: ignore[misc]


def test_render_template_compiles_each_body_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a counting compile_template and a body no other test uses
    calls: list[tuple[str, str]] = []
    real_compile = rendering.compile_template

    def counting(*, format: str, body: str) -> CompiledTemplate:
        calls.append((format, body))
        return real_compile(format=format, body=body)

    monkeypatch.setattr(rendering, "compile_template", counting)
    body = "cache test {{ n }}"

    # When it is rendered twice with different contexts
    first = render_template(format="text", body=body, context={"n": 1})
    second = render_template(format="text", body=body, context={"n": 2})

    # Then it was compiled once and rendered twice
    assert calls == [("text", body)]
    assert (first.content, second.content) == ("cache test 1", "cache test 2")


def test_render_template_returns_format_content_and_content_type() -> None:
    # Given a text template
    # When it is rendered through the convenience function
    rendered = render_template(format="text", body="Hi {{ name }}", context={"name": "Ada"})

    # Then the result carries format, content and content type
    assert rendered == RenderedTemplate(format="text", content="Hi Ada", content_type="text/plain")


def test_template_error_str_includes_the_line() -> None:
    # Given a syntax error on line 2
    # When it is compiled / Then str() shows the message and the line
    with pytest.raises(TemplateError) as caught:
        compile_template(format="text", body="ok\n{{ x|nope }}")
    assert str(caught.value) == "Invalid filter: 'nope' (line 2)"


# --------------------------------------------------------------------------------------------
# Compile errors and refused tags


def test_unclosed_tag_reports_message_and_line() -> None:
    # Given a template whose {% if %} on line 2 is never closed
    # When it is compiled / Then TemplateError says so, with the line
    with pytest.raises(TemplateError) as caught:
        compile_template(format="text", body="Hello\n{% if user %}\n{{ user }}")
    assert caught.value.message == (
        "Unclosed tag on line 2: 'if'. Looking for one of: elif, else, endif."
    )
    assert caught.value.line == 2


def test_malformed_tag_reports_the_innermost_line() -> None:
    # Given a malformed {% for %} on line 3 inside an {% if %}
    # When it is compiled / Then the error points at the {% for %}
    with pytest.raises(TemplateError) as caught:
        compile_template(format="html", body="{% if a %}\n<p>\n{% for x %}{% endfor %}{% endif %}")
    assert caught.value.message == "'for' statements should have at least four words: for x"
    assert caught.value.line == 3


def test_unparseable_variable_is_a_template_error() -> None:
    # Given a variable with trailing garbage
    # When it is compiled / Then Django's parse message is kept
    with pytest.raises(TemplateError) as caught:
        compile_template(format="text", body="{{ total!! }}")
    assert caught.value.message == "Could not parse the remainder: '!!' from 'total!!'"
    assert caught.value.line == 1


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        ("{% debug %}", "debug"),
        ("{% load static %}", "load"),
        ("{% include 'secrets.txt' %}", "include"),
        ("{% extends 'base.html' %}", "extends"),
        ("{% ssi '/etc/passwd' %}", "ssi"),
        ("{% csrf_token %}", "csrf_token"),
        ("{% url 'admin:index' %}", "url"),
        ("{% static 'x.css' %}", "static"),
        ("{% autoescape off %}{{ x }}{% endautoescape %}", "autoescape"),
        ("{% block content %}{% endblock %}", "block"),
        ("{% lorem 100000 %}", "lorem"),
        ("{% querystring %}", "querystring"),
    ],
)
def test_disallowed_tag_is_refused_at_compile_time(body: str, tag: str) -> None:
    # Given a body using a tag that exposes server state or switches escaping off
    # When it is compiled / Then TemplateError names the tag and its line
    with pytest.raises(TemplateError) as caught:
        compile_template(format="text", body=f"Hello\n{body}")
    assert caught.value.message == f"tag {{% {tag} %}} is not allowed in message templates"
    assert caught.value.line == 2


def test_disallowed_tag_inside_json_string_is_refused_with_its_path() -> None:
    # Given a json body with {% include %} in a nested string
    # When it is compiled / Then the error names the JSON path of that string
    with pytest.raises(TemplateError) as caught:
        compile_template(format="json", body='{"a": {"odd key": ["ok", "{% include \'x\' %}"]}}')
    assert caught.value.message == (
        '$.a["odd key"][1]: tag {% include %} is not allowed in message templates'
    )


@pytest.mark.parametrize("name", ["safe", "safeseq", "pprint", "json_script"])
def test_disallowed_filter_is_refused_at_compile_time(name: str) -> None:
    # Given a body using a filter that bypasses escaping or shows internals
    # When it is compiled / Then TemplateError names the filter
    with pytest.raises(TemplateError) as caught:
        compile_template(format="html", body=f"{{{{ value|{name} }}}}")
    assert caught.value.message == f"filter '{name}' is not allowed in message templates"
    assert caught.value.line == 1


def test_underscore_attribute_is_refused_at_compile_time() -> None:
    # Given a body reaching for a dunder attribute
    # When it is compiled / Then Django's underscore rule refuses it
    with pytest.raises(TemplateError) as caught:
        compile_template(format="text", body="{{ x.__class__.__mro__ }}")
    assert caught.value.message == (
        "Variables and attributes may not begin with underscores: 'x.__class__.__mro__'"
    )


def test_templatetag_is_allowed() -> None:
    # Given a body printing template syntax with {% templatetag %}
    # When it is rendered / Then the literal braces appear
    assert render("text", "{% templatetag openvariable %} x {% templatetag closevariable %}") == (
        "{{ x }}"
    )


def test_render_time_failure_is_a_template_error() -> None:
    # Given a filter whose argument is invalid only at render time
    template = compile_template(format="text", body="{{ n|divisibleby:0 }}")

    # When it is rendered / Then TemplateError wraps the failure
    with pytest.raises(TemplateError) as caught:
        template.render({"n": 4})
    assert caught.value.message == "template failed to render: integer modulo by zero"


# --------------------------------------------------------------------------------------------
# Context safety


@pytest.mark.parametrize(
    "body",
    ["{{ d.clear }}", "{{ d.popitem }}", "{{ d.keys }}", "{{ d.values }}", "{{ d.copy }}"],
)
def test_dict_methods_render_empty_and_do_not_mutate(body: str) -> None:
    # Given a context whose dict has methods that would mutate or expose it
    context = {"d": {"a": 1, "b": {"c": [1, 2]}}}
    before = copy.deepcopy(context)

    # When a template names one of those methods
    content = render("text", body, context)

    # Then nothing renders and the context is unchanged
    assert content == ""
    assert context == before


@pytest.mark.parametrize(
    "body", ["{{ l.pop }}", "{{ l.clear }}", "{{ l.reverse }}", "{{ l.sort }}"]
)
def test_list_methods_render_empty_and_do_not_mutate(body: str) -> None:
    # Given a context whose list has mutating methods
    context = {"l": [3, 1, 2]}

    # When a template names one of them
    content = render("text", body, context)

    # Then nothing renders and the list is unchanged
    assert content == ""
    assert context == {"l": [3, 1, 2]}


def test_key_lookup_wins_over_method_names() -> None:
    # Given an object whose keys shadow dict method names
    context = {"cart": {"items": ["pen", "ink"], "keys": "k", "clear": "c"}}

    # When they are looked up
    content = render("text", "{{ cart.items|join:',' }} {{ cart.keys }} {{ cart.clear }}", context)

    # Then the data is returned
    assert content == "pen,ink k c"


def test_nested_key_and_index_lookup() -> None:
    # Given nested objects and lists
    context = {"order": {"lines": [{"sku": "A1"}, {"sku": "B2"}]}}

    # When a template indexes into them
    content = render(
        "text", "{{ order.lines.1.sku }}|{{ order.lines.9.sku }}|{{ nope.x }}", context
    )

    # Then existing paths render, missing ones render empty
    assert content == "B2||"


def test_for_loop_over_object_items() -> None:
    # Given an object
    context = {"totals": {"net": 10, "tax": 2}}

    # When a template iterates over its items
    content = render("text", "{% for k, v in totals.items %}{{ k }}={{ v }};{% endfor %}", context)

    # Then each key and value pair is visited in order
    assert content == "net=10;tax=2;"


def test_for_loop_over_object_visits_keys() -> None:
    # Given an object
    context = {"flags": {"b": True, "a": False}}

    # When a template iterates over it directly, forwards and reversed
    body = (
        "{% for k in flags %}{{ k }}{% endfor %}-{% for k in flags reversed %}{{ k }}{% endfor %}"
    )
    content = render("text", body, context)

    # Then it sees the keys, as with a dict
    assert content == "ba-ab"


def test_objects_and_lists_render_as_json() -> None:
    # Given nested data
    context = {"data": {"name": "Zoë", "tags": ["a", None, True, 1.5]}}

    # When the whole object is printed
    content = render("text", "{{ data }}", context)

    # Then it renders as JSON text, not a Python repr
    assert content == '{"name": "Zoë", "tags": ["a", null, true, 1.5]}'


def test_non_json_context_value_is_a_type_error() -> None:
    # Given a context holding an arbitrary Python object
    template = compile_template(format="text", body="{{ obj }}")

    # When it is rendered / Then TypeError names the path
    with pytest.raises(TypeError) as caught:
        template.render({"user": {"obj": object()}})
    assert str(caught.value) == "context value at $.user.obj is not JSON data: object"


def test_non_json_value_inside_a_list_is_a_type_error_naming_its_path() -> None:
    # Given a set nested in an object inside a list
    template = compile_template(format="text", body="{{ a }}")

    # When it is rendered / Then TypeError names the full path
    with pytest.raises(TypeError) as caught:
        template.render({"a": [1, {"b": {2}}]})
    assert str(caught.value) == "context value at $.a[1].b is not JSON data: set"


def test_non_string_key_is_a_type_error_naming_its_path() -> None:
    # Given an object with an integer key
    template = compile_template(format="text", body="{{ a }}")

    # When it is rendered / Then TypeError names the key and where it is
    with pytest.raises(TypeError) as caught:
        template.render({"a": {1: "x"}})
    assert str(caught.value) == "context key 1 at $.a is not a string"


def test_context_built_in_python_renders_like_plain_json() -> None:
    # Given tuples, an OrderedDict and str and int subclasses in place of JSON types
    class Name(str):
        pass

    class Count(int):
        pass

    context = OrderedDict(
        tags=("a", "b"),
        user=OrderedDict(name=Name("ada")),
        n=Count(3),
        when=datetime.date(2024, 5, 1),
    )
    body = "{% for t in tags %}{{ t }}{% endfor %} {{ user.name|title }} {{ n|add:1 }} {{ when }}"

    # When it is rendered
    content = render("text", body, context)

    # Then it renders as the same data in plain dicts, lists and builtins would
    assert content == "ab Ada 4 May 1, 2024"


def test_frozen_context_renders_several_templates() -> None:
    # Given a context frozen once
    frozen = freeze_context({"user": {"name": "ada"}, "total": 12.5})

    # When two templates of different formats render it
    text = compile_template(format="text", body="Hi {{ user.name }}").render(frozen)
    html = compile_template(format="html", body="<b>{{ total }}</b>").render(frozen)

    # Then each renders the same data
    assert isinstance(frozen, FrozenContext)
    assert text.content == "Hi ada"
    assert html.content == "<b>12.5</b>"


def test_frozen_context_is_a_snapshot_of_the_mapping() -> None:
    # Given a context frozen, then changed in place
    context: dict[str, Any] = {"user": {"name": "ada"}}
    frozen = freeze_context(context)
    context["user"]["name"] = "bob"
    template = compile_template(format="text", body="{{ user.name }}")

    # When the frozen copy and the mapping are rendered
    # Then the frozen copy keeps the data it was built from; the mapping shows the change
    assert template.render(frozen).content == "ada"
    assert template.render(context).content == "bob"


def test_render_template_accepts_a_frozen_context() -> None:
    # Given a frozen context
    frozen = freeze_context({"n": 2})

    # When it is rendered through render_template / Then it is used like the mapping
    assert render_template(format="text", body="{{ n }}", context=frozen).content == "2"


def test_freeze_context_refuses_non_json_data_like_render() -> None:
    # Given a context holding an arbitrary object
    # When it is frozen / Then TypeError names the path, as render's does
    with pytest.raises(TypeError) as caught:
        freeze_context({"user": {"obj": object()}})
    assert str(caught.value) == "context value at $.user.obj is not JSON data: object"


def test_same_context_object_changed_between_renders_renders_the_change() -> None:
    # Given one dict rendered, then changed in place (nested and at the top)
    template = compile_template(format="text", body="{{ user.name }} {{ total }}")
    context: dict[str, Any] = {"user": {"name": "ada"}, "total": 1}
    first = template.render(context).content
    context["user"]["name"] = "bob"
    context["total"] = True

    # When the same object is rendered again
    second = template.render(context).content

    # Then the second render uses the changed data, not a copy kept from the first
    assert (first, second) == ("ada 1", "bob True")


def test_different_context_objects_render_their_own_data() -> None:
    # Given two equal-shaped contexts rendered one after the other
    template = compile_template(format="text", body="{{ user.name }}")

    # When each is rendered
    # Then each gives its own value
    assert template.render({"user": {"name": "ada"}}).content == "ada"
    assert template.render({"user": {"name": "bob"}}).content == "bob"


def test_safe_string_in_context_is_still_escaped() -> None:
    # Given a value marked safe by the caller
    context = {"x": mark_safe("<a href='https://evil.example'>x</a>")}

    # When it is rendered as html
    content = render("html", "<p>{{ x }}</p>", context)

    # Then it is escaped like any other string
    assert content == "<p>&lt;a href=&#x27;https://evil.example&#x27;&gt;x&lt;/a&gt;</p>"


def test_date_and_number_filters_work_on_values() -> None:
    # Given a date, a float and a missing value
    context = {"when": datetime.date(2024, 5, 1), "amount": 1234.5}

    # When filters format them
    body = "{{ when|date:'d/m/Y' }} {{ amount|floatformat:2 }} {{ missing|default:'n/a' }}"

    # Then each filter applies
    assert render("text", body, context) == "01/05/2024 1234.50 n/a"


def test_dictsort_and_length_filters_work_on_lists() -> None:
    # Given a list of objects
    context = {"people": [{"name": "Bo", "age": 40}, {"name": "Al", "age": 30}]}

    # When they are sorted and counted
    body = "{% for p in people|dictsort:'age' %}{{ p.name }} {% endfor %}({{ people|length }})"

    # Then dictsort resolves keys through the read-only wrapper
    assert render("text", body, context) == "Al Bo (2)"


# --------------------------------------------------------------------------------------------
# text


def test_text_renders_nested_values_filters_and_loops() -> None:
    # Given an order with lines
    context = {"user": {"name": "ada"}, "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}
    body = (
        "Hi {{ user.name|capfirst }},\n"
        "{% for line in lines %}{{ forloop.counter }}. {{ line.sku }} x{{ line.qty }}\n{% endfor %}"
        "{{ lines|length }} item{{ lines|length|pluralize }}"
    )

    # When it is rendered as text
    rendered = compile_template(format="text", body=body).render(context)

    # Then values, filters and the loop all apply
    assert rendered == RenderedTemplate(
        format="text",
        content="Hi Ada,\n1. A x2\n2. B x1\n2 items",
        content_type="text/plain",
    )


def test_text_does_not_escape() -> None:
    # Given a value with markup characters
    # When it is rendered as text / Then it is left as is
    assert render("text", "{{ v }}", {"v": "<b>Tom & Jerry's</b>"}) == "<b>Tom & Jerry's</b>"


@pytest.mark.parametrize("fmt", ["text", "html", "markdown"])
def test_rendered_content_is_a_plain_str_not_marked_safe(fmt: str) -> None:
    # Given a template in a string format
    # When it is rendered
    content = render(fmt, "{{ v }}", {"v": "<b>x</b>"})

    # Then the content is a plain str, so no later Django template trusts it as safe HTML
    assert type(content) is str


# --------------------------------------------------------------------------------------------
# html


def test_html_renders_nested_values_filters_and_loops() -> None:
    # Given a list of items and a title
    context = {"title": "Order", "items": [{"name": "pen", "price": 1.5}, {"name": "ink"}]}
    body = (
        "<h1>{{ title|upper }}</h1><ul>"
        "{% for i in items %}<li>{{ i.name }}: {{ i.price|default:'free' }}</li>{% endfor %}</ul>"
    )

    # When it is rendered as html
    rendered = compile_template(format="html", body=body).render(context)

    # Then the markup is kept and the content type is html
    assert rendered == RenderedTemplate(
        format="html",
        content="<h1>ORDER</h1><ul><li>pen: 1.5</li><li>ink: free</li></ul>",
        content_type="text/html",
    )


def test_html_escapes_context_values() -> None:
    # Given a context value carrying a script
    context = {"comment": "<script>alert(1)</script>"}

    # When it is rendered as html
    content = render("html", "{{ comment }}", context)

    # Then it is text, not markup
    assert content == "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_html_sanitises_the_author_written_body() -> None:
    # Given a body with an event handler, a script and a javascript: link
    body = '<p onclick="x()">hi</p><script>bad()</script><a href="javascript:alert(1)">x</a>'

    # When it is rendered as html
    content = render("html", body)

    # Then the handler, the script element and the href are gone; the inert text remains
    assert content == f"<p>hi</p>bad()<a {REL}>x</a>"


def test_html_links_keep_safe_href_and_get_rel() -> None:
    # Given author links with allowed protocols and a rel of their own
    body = (
        '<a href="https://example.com/?a=1&amp;b=2" title="Site" rel="opener">site</a> '
        '<a href="mailto:help@example.com">mail</a>'
    )

    # When it is rendered as html
    content = render("html", body)

    # Then href and title stay and rel is replaced by the safe one
    assert content == (
        f'<a href="https://example.com/?a=1&amp;b=2" title="Site" {REL}>site</a> '
        f'<a href="mailto:help@example.com" {REL}>mail</a>'
    )


def test_html_does_not_turn_bare_urls_into_links() -> None:
    # Given a bare URL in text
    # When it is rendered as html / Then it stays text
    assert render("html", "<p>see {{ url }}</p>", {"url": "https://example.com"}) == (
        "<p>see https://example.com</p>"
    )


def test_html_strips_tags_outside_the_allow_list() -> None:
    # Given images, iframes, styles and forms written by the author
    body = (
        '<img src="x" onerror="alert(1)"><iframe src="https://e.com"></iframe>'
        '<span style="color:red">s</span><form><input name="q"></form><table><tr><td>1</td>'
        "</tr></table>"
    )

    # When it is rendered as html
    content = render("html", body)

    # Then only allow-listed tags without their disallowed attributes remain (bleach marks
    # the stripped block-level form with a newline; the parser adds the implied tbody)
    assert content == "<span>s</span>\n<table><tbody><tr><td>1</td></tr></tbody></table>"


# --------------------------------------------------------------------------------------------
# markdown


def test_markdown_renders_nested_values_filters_and_loops() -> None:
    # Given a markdown body with a heading, emphasis, a loop and a link
    context = {"user": {"name": "ada"}, "steps": ["verify email", "add card"]}
    body = (
        "# Welcome {{ user.name|title }}\n\n"
        "Please **finish**:\n\n"
        "{% for step in steps %}- {{ step|capfirst }}\n{% endfor %}\n"
        "[Help](https://example.com/help)"
    )

    # When it is rendered as markdown
    rendered = compile_template(format="markdown", body=body).render(context)

    # Then the html is rendered and sanitised, links get rel
    assert rendered == RenderedTemplate(
        format="markdown",
        content=(
            "<h1>Welcome Ada</h1>\n<p>Please <strong>finish</strong>:</p>\n"
            "<ul>\n<li>Verify email</li>\n<li>Add card</li>\n</ul>\n"
            f'<p><a href="https://example.com/help" {REL}>Help</a></p>'
        ),
        content_type="text/html",
    )


def test_markdown_escapes_html_in_context_values() -> None:
    # Given a context value with an image carrying an event handler
    context = {"name": "<img src=x onerror=alert(1)>"}

    # When it is rendered as markdown
    content = render("markdown", "Hello {{ name }}", context)

    # Then the markup is text
    assert content == "<p>Hello &lt;img src=x onerror=alert(1)&gt;</p>"


def test_markdown_drops_javascript_links() -> None:
    # Given a markdown link to javascript:
    # When it is rendered / Then the link keeps its text but loses the href
    assert render("markdown", "[x](javascript:alert(1))") == f"<p><a {REL}>x</a></p>"


def test_markdown_sanitises_raw_html_in_the_body() -> None:
    # Given raw html in a markdown body
    body = '<div onclick="x()">**hi**</div>\n\n<script>bad()</script>'

    # When it is rendered as markdown
    content = render("markdown", body)

    # Then disallowed elements and attributes are stripped, leaving inert text
    assert content == "**hi**\n\nbad()"


def test_markdown_renders_tables() -> None:
    # Given a markdown table built from a loop
    body = (
        "| sku | qty |\n|---|---|\n{% for l in lines %}| {{ l.sku }} | {{ l.qty }} |\n{% endfor %}"
    )
    context = {"lines": [{"sku": "A", "qty": 1}]}

    # When it is rendered
    content = render("markdown", body, context)

    # Then the table survives sanitising
    assert content == (
        "<table>\n<thead>\n<tr>\n<th>sku</th>\n<th>qty</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>A</td>\n<td>1</td>\n</tr>\n</tbody>\n</table>"
    )


def test_markdown_renders_consecutive_messages_independently() -> None:
    # Given two markdown bodies rendered one after the other in the same thread
    # When each is rendered
    first = render("markdown", "**one** {{ n }}", {"n": 1})
    second = render("markdown", "_two_ {{ n }}", {"n": 2})

    # Then each gives exactly its own html
    assert (first, second) == ("<p><strong>one</strong> 1</p>", "<p><em>two</em> 2</p>")


def test_markdown_link_reference_does_not_leak_into_the_next_render() -> None:
    # Given a message that defines a link reference, rendered first
    first = render("markdown", "[x][ref]\n\n[ref]: https://example.com/a")

    # When a message using the same reference without defining it is rendered next
    second = render("markdown", "[y][ref]")

    # Then only the first has the link; the second shows the reference as text
    assert first == f'<p><a href="https://example.com/a" {REL}>x</a></p>'
    assert second == "<p>[y][ref]</p>"


def test_markdown_footnotes_do_not_leak_between_renders() -> None:
    # Given a message with a footnote
    body = "A[^1]\n\n[^1]: The note."
    expected = (
        f'<p>A<a href="#fn:1" {REL}>1</a></p>\n\n\n<hr>\n<ol>\n<li>\n<p>The note.&#160;'
        f'<a href="#fnref:1" title="Jump back to footnote 1 in the text" {REL}>&#8617;</a></p>\n'
        "</li>\n</ol>\n"
    )

    # When it is rendered twice, then a message using the footnote without defining it
    first = render("markdown", body)
    second = render("markdown", body)
    third = render("markdown", "B[^1]")

    # Then both renders list the one note (not two), and the third has no footnote at all
    assert first == expected
    assert second == expected
    assert third == "<p>B[^1]</p>"


def test_markdown_output_equals_a_fresh_converter_s() -> None:
    # Given bodies using the extensions with state: footnotes, abbreviations, references,
    # definition lists, tables, fenced code and markdown in html
    bodies = [
        "x[^n]\n\n[^n]: note",
        "*[HTML]: Hyper Text\n\nHTML here",
        "HTML again",
        "[a][r]\n\n[r]: https://example.com/r",
        "[a][r]",
        "Term\n: Definition",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "```\ncode\n```",
        '<div markdown="1">*em*</div>',
    ]

    # When each is rendered in turn
    rendered = [render("markdown", body) for body in bodies]

    # Then each equals what a new markdown.Markdown per message gives, sanitised
    assert rendered == [
        rendering.sanitize_html(markdown.markdown(body, extensions=["extra", "sane_lists"]))
        for body in bodies
    ]


def test_markdown_converter_left_dirty_is_reset_before_the_next_render() -> None:
    # Given this thread's converter left holding a reference from an unfinished conversion
    render("markdown", "warm up")
    converter = rendering._CONVERTERS.markdown
    converter.convert("[ref]: https://evil.example/")

    # When a message using that reference is rendered
    content = render("markdown", "[y][ref]")

    # Then the stale reference is not used
    assert content == "<p>[y][ref]</p>"


def test_markdown_converter_is_built_once_per_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a counter of converters built, and no converter in a new thread yet
    built: list[int] = []
    real = markdown.Markdown

    def counting(*args: Any, **kwargs: Any) -> markdown.Markdown:
        built.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(rendering.markdown, "Markdown", counting)
    results: list[str] = []

    def work() -> None:
        results.extend(render("markdown", f"*{n}*") for n in range(3))

    # When a new thread renders three messages
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()

    # Then it built one converter and rendered each message
    assert len(built) == 1
    assert results == ["<p><em>0</em></p>", "<p><em>1</em></p>", "<p><em>2</em></p>"]


# --------------------------------------------------------------------------------------------
# json


def test_json_renders_string_leaves_and_keeps_other_values() -> None:
    # Given a json body with templated strings, numbers, booleans and null (the backslash
    # continues a string that is too long for one line; JSON strings cannot hold newlines)
    body = """{
        "subject": "Order {{ order.id }} for {{ order.user.name|upper }}",
        "lines": ["{% for l in order.lines %}{{ l }}{% if not forloop.last %}, {% endif %}\
{% endfor %}"],
        "count": 2, "urgent": false, "note": null,
        "{{ not_a_template }}": "plain"
    }"""
    context = {"order": {"id": 7, "user": {"name": "ada"}, "lines": ["pen", "ink"]}}

    # When it is rendered
    rendered = compile_template(format="json", body=body).render(context)

    # Then strings are rendered, keys and other values are unchanged
    assert rendered == RenderedTemplate(
        format="json",
        content={
            "subject": "Order 7 for ADA",
            "lines": ["pen, ink"],
            "count": 2,
            "urgent": False,
            "note": None,
            "{{ not_a_template }}": "plain",
        },
        content_type="application/json",
    )


def test_json_string_leaves_are_not_html_escaped() -> None:
    # Given a value with markup characters
    # When it is rendered in a json template / Then the string is unescaped text
    assert render("json", '["{{ v }}"]', {"v": "<b>Tom & Jerry's</b>"}) == ["<b>Tom & Jerry's</b>"]


def test_json_invalid_body_reports_parse_message_and_position() -> None:
    # Given a json body whose second key on line 2 has no value
    # When it is compiled / Then TemplateError gives the parser's message and position
    with pytest.raises(TemplateError) as caught:
        compile_template(format="json", body='{"a": 1,\n "b" }')
    assert caught.value.message == (
        "body is not valid JSON: Expecting ':' delimiter at line 2 column 6"
    )
    assert caught.value.line == 2


def test_json_scalar_body_is_refused() -> None:
    # Given a json body that is a bare string
    # When it is compiled / Then TemplateError asks for an object or array
    with pytest.raises(TemplateError) as caught:
        compile_template(format="json", body='"Hello {{ name }}"')
    assert caught.value.message == "a json template must be a JSON object or array"


def test_json_syntax_error_in_a_leaf_names_its_path() -> None:
    # Given a json body with an unclosed tag in one string
    # When it is compiled / Then the message starts with that string's path
    with pytest.raises(TemplateError) as caught:
        compile_template(format="json", body='{"body": ["ok", "{% if x %}y"]}')
    assert caught.value.message == (
        "$.body[1]: Unclosed tag on line 1: 'if'. Looking for one of: elif, else, endif."
    )


# --------------------------------------------------------------------------------------------
# Memoised conversion and sanitising


def test_a_repeated_markdown_message_is_converted_once_and_rendered_identically() -> None:
    # given a markdown template whose output is the same for two subjects
    rendering._markdown_memo.cache_clear()
    body = "**Hi** {{ user.country }} <script>x</script> [site](https://example.com)"
    # when it is rendered for both
    first = render("markdown", body, {"user": {"id": 1, "country": "DE"}})
    second = render("markdown", body, {"user": {"id": 2, "country": "DE"}})
    # then both are the same sanitised HTML, and the second came from the memo
    expected = (
        '<p><strong>Hi</strong> DE x <a href="https://example.com" '
        'rel="noopener noreferrer nofollow">site</a></p>'
    )
    assert (first, second) == (expected, expected)
    info = rendering._markdown_memo.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_html_outputs_differing_by_a_value_are_sanitised_separately() -> None:
    rendering._sanitize_memo.cache_clear()
    body = "<b>{{ n }}</b><img src=x onerror=alert(1)>"
    assert [render("html", body, {"n": n}) for n in (1, 2, 1)] == [
        "<b>1</b>",
        "<b>2</b>",
        "<b>1</b>",
    ]
    info = rendering._sanitize_memo.cache_info()
    assert (info.misses, info.hits) == (2, 1)


def test_a_large_message_is_not_kept_in_the_memo() -> None:
    rendering._sanitize_memo.cache_clear()
    big = "a" * (rendering._MEMO_MAX_CHARS + 1)
    assert render("html", "<i>{{ t }}</i>", {"t": big}) == f"<i>{big}</i>"
    assert rendering._sanitize_memo.cache_info().currsize == 0


# --------------------------------------------------------------------------------------------
# Templates of text and variables only take the direct path; it must render exactly as
# Template.render does.

XSS_PAYLOADS: list[str] = json.loads(
    (Path(__file__).parent / "data" / "xss_corpus.json").read_text(encoding="utf-8")
)["payloads"]

PLAIN_BODIES = [
    "",
    "no variables at all",
    "Hi {{ user.name }}, {{ cart.total }} {{ cart.currency|upper }}",
    "{{ missing }}|{{ missing.deeper }}|{{ user.missing|default:'n/a' }}",
    "{{ cart.items.0.sku }} {{ cart.items|length }} {{ cart.items }}",
    "{{ user }} {{ flags }} {{ ratio }} {{ big }} {{ neg|floatformat:2 }}",
    "{{ v }}<{{ v|lower }}>{{ v|truncatechars:10 }}{{ v|urlencode }}{{ v|escape }}",
    '<a href="{{ v }}" title="{{ v|title }}">{{ v|linebreaksbr }}</a>',
    "{{ when|date:'Y-m-d' }} {{ yes|yesno:'on,off' }} {{ none }}",
    # Plain paths to every kind of value, and paths the direct lookup leaves to Django.
    "{{ count }} {{ negative }} {{ big }} {{ user.age }} {{ cart.total }} {{ yes }} {{ none }}",
    "{{ user.tags.0 }} {{ user.items }} {{ user.name.upper }} {{ True }} {{ None }} {{ v.x }}",
    "{{ user.address.city }} {{ user.address.missing }} {{ user.address }} {{ cart.items }}",
    "{{ count|add:1 }} {{ big|stringformat:'d' }} {{ user.name|default:'n/a' }}{{ empty }}",
]


@pytest.mark.parametrize("grouping", [False, True], ids=["no-grouping", "thousands-grouping"])
@pytest.mark.parametrize("autoescape", [True, False])
@pytest.mark.parametrize("body", PLAIN_BODIES)
def test_plain_templates_render_as_template_render_does(
    body: str, autoescape: bool, grouping: bool, settings: Any
) -> None:
    # given a template of text and variables, and the same template forced through
    # Template.render, with and without thousands grouping
    settings.USE_THOUSAND_SEPARATOR = grouping
    direct = rendering._compile_django(body)
    full = rendering._compile_django(body)
    setattr(full, rendering._PLAIN_ATTR, False)
    assert getattr(direct, rendering._PLAIN_ATTR) is not False
    for value in ["plain", "Ünïcode ‮rtl", *XSS_PAYLOADS]:
        context = {
            "count": 1234567,
            "negative": -1200,
            "empty": "",
            "user": {
                "name": value,
                "tags": [value],
                "age": 42,
                "items": value,
                "address": {"city": value, "zip": "10677"},
            },
            "cart": {"total": 1234.5, "currency": "eur", "items": [{"sku": value}]},
            "flags": [True, False, None],
            "ratio": 0.1 + 0.2,
            "big": 10**20,
            "neg": -3.14159,
            "v": value,
            "when": "2026-11-21",
            "yes": True,
            "none": None,
        }
        data = rendering._frozen_context(context)
        # when both render
        got = rendering._render_django(direct, data, autoescape=autoescape)
        expected = rendering._render_django(full, data, autoescape=autoescape)
        # then the outputs are the same plain strings
        assert (type(got), got) == (str, expected)


@pytest.mark.parametrize(
    "body",
    [
        "{% now 'Y' as year %}{{ year }}",
        "{% for item in items %}{{ item }}{% endfor %}",
        "{% if v %}{{ v }}{% endif %}",
        "{% with x=v %}{{ x }}{% endwith %}",
    ],
)
def test_templates_with_tags_keep_template_render(body: str) -> None:
    # given a template with a tag (tags may write into the context)
    template = rendering._compile_django(body)
    # then it is not rendered on the direct path, and still renders
    assert getattr(template, rendering._PLAIN_ATTR) is False
    data = rendering._frozen_context({"v": "<b>", "items": [1, 2]})
    assert rendering._render_django(template, data, autoescape=True) in {
        str(datetime.date.today().year),
        "12",
        "&lt;b&gt;",
    }
