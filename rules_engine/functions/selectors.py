"""Reads of custom functions: named lists, WASM functions and the rules that use them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from rules_engine.functions.models import NamedList, WasmFunction
from rules_engine.models import Rule


def named_list_get(*, name: str) -> NamedList | None:
    """The named list called `name`, or None."""
    return NamedList.objects.filter(name=name).first()


def named_list_all() -> QuerySet[NamedList]:
    """Every named list, by name."""
    return NamedList.objects.order_by("name")


def wasm_function_get(*, name: str) -> WasmFunction | None:
    """The WASM function called `name`, active or not, or None."""
    return WasmFunction.objects.filter(name=name).first()


def wasm_function_all() -> QuerySet[WasmFunction]:
    """Every WASM function, by name."""
    return WasmFunction.objects.order_by("name")


def _named_calls(value: Any, operator: str) -> Iterator[str]:
    """The constant first arguments of every `{operator: [name, ...]}` node inside `value`."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if len(node) == 1 and operator in node:
                args = node[operator]
                first = args[0] if isinstance(args, list) and args else args
                if isinstance(first, str):
                    yield first
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def rules_calling(*, operator: str, name: str) -> list[Rule]:
    """Active rules whose condition, cooldown key or actions call `{operator: [name, ...]}`.

    Scans the JSON of every active rule in Python (rules are few and this runs only when a
    list or function is deleted or deactivated).
    """
    found = []
    for rule in Rule.objects.filter(active=True).order_by("name"):
        for part in (rule.condition, rule.cooldown_key, rule.actions):
            if name in _named_calls(part, operator):
                found.append(rule)
                break
    return found
