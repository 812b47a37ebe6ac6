"""`manage.py rules_backtest`: backtest a candidate rule (or rule set) over stored history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lifecycle import services
from lifecycle.management.progress import ProgressBar
from lifecycle.management.timeparse import parse_instant
from lifecycle.models import Backtest
from lifecycle.reports import summary_lines
from rules_engine.errors import InvalidInput, NotFound
from rules_engine.models import Rule


def _load_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc


def _worker_available() -> bool:
    """Whether a Celery worker answers a ping within a second (False when the broker is down)."""
    from config.celery import app

    try:
        return bool(app.control.ping(timeout=1.0))
    except Exception:  # noqa: BLE001  (no broker: no worker)
        return False


class Command(BaseCommand):
    """Start a backtest; run it here with a progress bar (--wait, or no worker) and summarise."""

    help = (
        "Backtest a candidate rule (--rule ID --candidate-file FILE) or a whole rule set "
        "(--ruleset-file FILE, a JSON list of rules) over audit snapshots or stored events."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--entry-point", required=True, help="entry point key")
        parser.add_argument("--rule", help="id of the live rule the candidate replaces")
        candidate = parser.add_mutually_exclusive_group(required=True)
        candidate.add_argument(
            "--candidate-file",
            help="JSON object: condition, actions, priority, active, stop_processing, name",
        )
        candidate.add_argument("--ruleset-file", help="JSON list of rule objects")
        parser.add_argument("--from", dest="window_from", required=True, help="ISO-8601")
        parser.add_argument("--to", dest="window_to", required=True, help="ISO-8601 (excluded)")
        parser.add_argument(
            "--source", choices=[str(s) for s in Backtest.Source], default="executions"
        )
        parser.add_argument(
            "--positive-labels", default="FRAUD,CHARGEBACK", help="comma-separated labels"
        )
        parser.add_argument("--sample", type=int, default=10, help="examples to keep")
        parser.add_argument("--chunk", type=int, default=500, help="contexts per chunk")
        parser.add_argument("--wait", action="store_true", help="run here and print the summary")

    def handle(self, *args: Any, **options: Any) -> None:
        rule = None
        if options["rule"]:
            rule = Rule.objects.filter(pk=options["rule"]).first()
            if rule is None:
                raise CommandError(f"no rule {options['rule']}")
        if options["ruleset_file"] and rule is not None:
            raise CommandError("--rule goes with --candidate-file, not --ruleset-file")
        candidate = _load_json(options["candidate_file"] or options["ruleset_file"])
        inline = options["wait"] or not _worker_available()
        try:
            backtest = services.backtest_start(
                entry_point=options["entry_point"],
                window_from=parse_instant(options["window_from"]),
                window_to=parse_instant(options["window_to"]),
                candidate=candidate,
                rule=rule,
                source=options["source"],
                positive_labels=[x.strip() for x in options["positive_labels"].split(",") if x],
                sample_size=options["sample"],
                note="manage.py rules_backtest",
                enqueue=not inline,
            )
        except NotFound as exc:
            raise CommandError(exc.message) from exc
        except InvalidInput as exc:
            details = "; ".join(f"{d['path']}: {d['message']}" for d in exc.details)
            raise CommandError(f"{exc.code}: {details}") from exc
        if not inline:
            self.stdout.write(
                f"backtest #{backtest.pk} queued for a worker; see it in the admin "
                "(Lifecycle > Backtests) or run again with --wait"
            )
            return
        bar = ProgressBar(
            lambda text: self.stderr.write(text, ending=""), label=f"backtest #{backtest.pk}"
        )
        done = services.backtest_run(
            backtest_id=backtest.pk,
            chunk_size=options["chunk"],
            on_chunk=lambda row: bar.update(row.processed, row.total),
        )
        bar.finish()
        if done is None:
            raise CommandError(f"backtest #{backtest.pk} was not open any more")
        self.stdout.write(f"backtest #{done.pk}: {done.status} ({done.processed}/{done.total})")
        if done.status == Backtest.Status.FAILED:
            raise CommandError(done.error)
        for line in summary_lines(done.results):
            self.stdout.write(line)
