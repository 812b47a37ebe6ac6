"""`manage.py rules_import`: apply a rules bundle (file or directory), validated and atomic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from rules_engine import portability


class Command(BaseCommand):
    """Import a bundle written by `rules_export` (or by hand) and print what changes.

    All or nothing: on any problem every one is printed with its place in the files and the
    command fails (exit status 1) with nothing written. `--dry-run` prints the same report and
    writes nothing; `--prune` also deletes rules of the bundle's entry points (and test cases
    of its rules) that the bundle does not list. Rules of critical entry points are applied
    directly (an operator's deploy), with the history note `rules_import <FILE>`.
    """

    help = "Import entry points, rules, templates, named lists and test cases (YAML or JSON)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("source", metavar="FILE|DIR")
        parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
        parser.add_argument(
            "--prune", action="store_true", help="delete rules the bundle does not list"
        )
        parser.add_argument("--user", help="username recorded in the history as the author")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Path(options["source"])
        if not source.exists():
            raise CommandError(f"no such file or directory: {source}")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        try:
            loaded = portability.read_bundle(source)
            report = portability.import_bundle(
                bundle=loaded.bundle,
                user=user,
                dry_run=options["dry_run"],
                prune=options["prune"],
                source=str(options["source"]),
                locate=loaded.locate,
            )
        except portability.BundleError as exc:
            for detail in exc.details:
                self.stderr.write(f"{detail['path']}: {detail['message']}")
            raise CommandError(
                f"{len(exc.details)} problems in {source}; nothing was written"
            ) from exc
        for line in report.lines():
            self.stdout.write(line)
