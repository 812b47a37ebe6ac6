"""Shared fixtures: a clean ruleset cache per test and the checkout demo built by services."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command

from rules_engine.cache import rulesets
from rules_engine.management.commands.rules_load_demo import DEMO_FILE
from rules_engine.models import EntryPoint


@pytest.fixture(autouse=True)
def _fresh_ruleset_cache() -> Any:
    """Each test starts with no compiled rulesets and no generation stamp."""
    rulesets.clear()
    cache.clear()
    yield
    rulesets.clear()


@pytest.fixture
def demo(db: Any) -> EntryPoint:
    """The checkout demo (entry point, templates, five rules), loaded by its command."""
    call_command("rules_load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return EntryPoint.objects.get(key="checkout")


@pytest.fixture
def demo_context() -> dict[str, Any]:
    """The checkout schema's example context (a fresh copy per test)."""
    data = json.loads(DEMO_FILE.read_text())
    return copy.deepcopy(data["entry_point"]["context_schema"]["examples"][0])
