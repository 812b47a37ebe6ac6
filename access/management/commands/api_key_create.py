"""`manage.py api_key_create`: create an API key from the command line (deploys, demos, benches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from access import services
from access.models import ApiKey
from access.selectors import api_key_verify
from rules_engine.errors import InvalidInput


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(BaseCommand):
    """Create a key and print it (it is shown only once), or with --save-to keep it in a file;
    with --reuse, an existing file whose key is still active is reused instead."""

    help = "Create an API key: --name, --scopes execute,events,read,manage, ... Prints the key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", default="execute", help="comma list")
        parser.add_argument("--kind", default=ApiKey.KIND_SECRET, choices=["secret", "publishable"])
        parser.add_argument("--entry-points", default="", help="comma list; empty: all")
        parser.add_argument("--origins", default="", help="publishable keys: comma list")
        parser.add_argument("--rate", default="", help="e.g. 100/minute; empty: the default")
        parser.add_argument("--save-to", default="", help="write the key to this file (0600)")
        parser.add_argument(
            "--reuse", action="store_true", help="keep the key in --save-to if still active"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target = Path(options["save_to"]) if options["save_to"] else None
        if options["reuse"] and target is not None and target.exists():
            raw = target.read_text().strip()
            if api_key_verify(raw=raw) is not None:
                self.stdout.write(raw)
                return
        try:
            _, raw = services.api_key_create(
                name=options["name"],
                scopes=_split(options["scopes"]),
                kind=options["kind"],
                entry_points=_split(options["entry_points"]),
                allowed_origins=_split(options["origins"]),
                rate=options["rate"],
            )
        except InvalidInput as exc:
            problems = "; ".join(f"{d['path']}: {d['message']}" for d in exc.details)
            raise CommandError(problems) from exc
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(raw + "\n")
            target.chmod(0o600)
        self.stdout.write(raw)
