"""`manage.py rules_test [--entry-point KEY]`: run every saved test case, for a team's CI."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rules_engine import selectors, testcases


class Command(BaseCommand):
    """Run every test case (one line each, then a summary); exit 1 when any case fails.

    Cases of active rules run against the live rule set; an inactive rule's cases run as if
    that rule were activated. Writes nothing.
    """

    help = "Run the rules' saved test cases; exits with status 1 if any case fails."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--entry-point", help="only the cases of this entry point (key)")

    def handle(self, *args: Any, **options: Any) -> None:
        key = options.get("entry_point")
        entry_point = None
        if key:
            entry_point = selectors.entry_point_get(key=key)
            if entry_point is None:
                raise CommandError(f"no entry point {key!r}")
        passed = failed = 0
        for report in testcases.rule_tests_run_all(entry_point=entry_point):
            for result in report.results:
                rule = result.rule if result.rule_active else f"{result.rule} (inactive)"
                name = f"{report.entry_point} / {rule} / {result.case}"
                if result.passed:
                    passed += 1
                    self.stdout.write(self.style.SUCCESS("PASS") + f" {name}")
                else:
                    failed += 1
                    why = "; ".join(result.reasons)
                    self.stdout.write(self.style.ERROR("FAIL") + f" {name}: {why}")
        self.stdout.write(f"{passed + failed} cases: {passed} passed, {failed} failed")
        if failed:
            # A plain exit status, for CI: call_command callers see SystemExit(1).
            raise SystemExit(1)
