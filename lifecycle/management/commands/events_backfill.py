"""`manage.py events_backfill`: re-run the stored events of a window through the current rules."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle import services
from lifecycle.management.progress import ProgressBar
from lifecycle.management.timeparse import parse_instant
from rules_engine.errors import InvalidInput


class Command(BaseCommand):
    """Dry run by default (what would change vs each stored decision); --apply writes once."""

    help = (
        "Re-decide the events received in [--from, --to) with the current rules. Without "
        "--apply nothing is written and the changes against the stored decisions are listed; "
        "with --apply each event gets a new decision (once per window: running it again skips "
        "the events already done)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="window_from", required=True, help="ISO-8601")
        parser.add_argument("--to", dest="window_to", required=True, help="ISO-8601 (excluded)")
        parser.add_argument("--type", dest="event_type", help="only events of this type")
        parser.add_argument("--apply", action="store_true", help="write the new decisions")
        parser.add_argument("--chunk", type=int, default=200, help="events per chunk")
        parser.add_argument("--show", type=int, default=50, help="changes to list")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = ProgressBar(lambda text: self.stderr.write(text, ending=""), label="events")
        try:
            summary = services.events_backfill(
                window_from=parse_instant(options["window_from"]),
                window_to=parse_instant(options["window_to"]),
                event_type=options["event_type"],
                apply=options["apply"],
                chunk_size=options["chunk"],
                on_progress=bar.update,
                max_changes=options["show"],
            )
        except InvalidInput as exc:
            raise CommandError("; ".join(d["message"] for d in exc.details)) from exc
        bar.finish()
        verb = "applied" if summary.apply else "dry run (nothing written; --apply to write)"
        self.stdout.write(f"{summary.key}: {verb}")
        for change in summary.changes:
            if change["status"] == "failed":
                self.stdout.write(
                    f"  {change['event']} {change['type']}: failed: {change['error']}"
                )
                continue
            before = change.get("before") or {"outcome": "none", "matched": []}
            after = change["after"]
            self.stdout.write(
                f"  {change['event']} {change['type']}: {before['outcome']} {before['matched']}"
                f" -> {after['outcome']} {after['matched']}"
            )
        line = (
            f"events: {summary.total}  unchanged: {summary.unchanged}  changed: {summary.changed}"
            f"  new: {summary.new}  failed: {summary.failed}"
        )
        if summary.apply:
            line += f"  applied: {summary.applied}  skipped (already backfilled): {summary.skipped}"
        self.stdout.write(line)
