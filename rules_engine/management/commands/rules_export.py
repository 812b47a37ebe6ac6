"""`manage.py rules_export`: write entry points, rules, templates, lists and test cases as code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from rules_engine import portability
from rules_engine.errors import NotFound


class Command(BaseCommand):
    """Export the rules bundle (see `rules_engine.portability`) to stdout, a file or a directory.

    `-o FILE.json` writes JSON, any other file name YAML; `-o DIR/` (or an existing directory)
    writes `_shared.yaml` and one `<entry point>.yaml` per entry point. Writes only those files.
    """

    help = (
        "Export entry points, rules, templates, named lists, WebAssembly functions and test"
        " cases (YAML or JSON)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--entry-point",
            action="append",
            dest="entry_points",
            metavar="KEY",
            help="only this entry point (repeatable) and the templates and lists its rules use",
        )
        parser.add_argument(
            "-o",
            "--output",
            help="a file (.json: JSON, else YAML) or a directory (ends with '/' or exists)",
        )
        parser.add_argument(
            "--format", choices=("yaml", "json"), default="yaml", help="format on stdout"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            bundle = portability.export_bundle(entry_points=options["entry_points"])
        except NotFound as exc:
            raise CommandError(exc.message) from exc
        output = options["output"]
        if not output:
            self.stdout.write(portability.dumps(bundle, fmt=options["format"]), ending="")
            return
        target = Path(output)
        directory = target.is_dir() or output.endswith((os.sep, "/"))
        written = portability.write_bundle(bundle, target, directory=directory)
        self.stderr.write(
            f"exported {len(bundle['entry_points'])} entry points, {len(bundle['rules'])} rules,"
            f" {len(bundle['templates'])} templates, {len(bundle['named_lists'])} named lists,"
            f" {len(bundle.get('wasm_functions', []))} WebAssembly functions"
            f" to {', '.join(str(p) for p in written)}"
        )
