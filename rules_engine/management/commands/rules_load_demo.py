"""`manage.py rules_load_demo`: load (or refresh) the checkout demo through the services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from rules_engine import services
from rules_engine.models import EntryPoint, MessageTemplate, Rule

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_FILE = DEMO_DIR / "checkout.json"
DEMO_FILES = (DEMO_FILE, DEMO_DIR / "orders.json")


class Command(BaseCommand):
    """Load the demo entry points, templates and rules; idempotent (matches by key and name)."""

    help = "Load the demos: checkout (a template per format, five rules) and order events."

    def handle(self, *args: Any, **options: Any) -> None:
        for path in DEMO_FILES:
            demo = json.loads(path.read_text())
            with transaction.atomic():
                entry_point = self._entry_point(demo["entry_point"])
                for template in demo["templates"]:
                    self._template(template)
                for rule in demo["rules"]:
                    self._rule(entry_point, rule)
            self.stdout.write(
                self.style.SUCCESS(
                    f"demo loaded: entry point {entry_point.key!r}, "
                    f"{len(demo['templates'])} templates, {len(demo['rules'])} rules"
                )
            )

    def _entry_point(self, data: dict[str, Any]) -> EntryPoint:
        existing = EntryPoint.objects.filter(key=data["key"]).first()
        if existing is None:
            return services.entry_point_create(data=data, change_note="Demo")
        return services.entry_point_update(entry_point=existing, data=data, change_note="Demo")

    def _template(self, data: dict[str, Any]) -> None:
        existing = MessageTemplate.objects.filter(key=data["key"]).first()
        if existing is None:
            services.template_create(data=data, change_note="Demo")
        elif (existing.format, existing.body) != (data["format"], data["body"]):
            services.template_update(template=existing, data=data, change_note="Demo")

    def _rule(self, entry_point: EntryPoint, data: dict[str, Any]) -> None:
        content = {"entry_point": entry_point, "active": True, **data}
        existing = Rule.objects.filter(entry_point=entry_point, name=data["name"]).first()
        if existing is None:
            services.rule_create(data=content, change_note="Demo")
        elif any(getattr(existing, key) != value for key, value in content.items()):
            services.rule_update(rule=existing, data=content, change_note="Demo")
