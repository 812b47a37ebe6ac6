"""`manage.py scheduling_sweep`: the long-running sweeper for production and the benchmark.

Every round publishes the pending delayed actions due within the horizon and recovers the
lost ones. Any number may run at once (they claim disjoint rows). SIGTERM or SIGINT ends the
loop after the current round, so no claimed batch is left unpublished by a clean stop.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connection

from scheduling import services
from scheduling.conf import setting

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    """Sweep and recover delayed actions in a loop until stopped."""

    help = "Publish delayed actions shortly before they are due and recover lost ones (loop)."

    def add_arguments(self, parser: CommandParser) -> None:
        """--interval (seconds between rounds) and --once (one round, for scripts)."""
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between rounds (default: SCHEDULE_SWEEP_INTERVAL)",
        )
        parser.add_argument("--once", action="store_true", help="run one round and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run rounds until SIGTERM/SIGINT (or once)."""
        interval = options["interval"]
        if interval is None:
            interval = setting("SCHEDULE_SWEEP_INTERVAL")
        stop = threading.Event()
        if not options["once"]:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"scheduling sweeper ready (interval {interval:g} s)")
        self.stdout.flush()
        while not stop.is_set():
            started = time.monotonic()
            self._round()
            if options["once"]:
                break
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
        self.stdout.write("scheduling sweeper stopped")

    def _round(self) -> None:
        try:
            services.scheduled_actions_sweep()
            services.scheduled_actions_recover()
        except Exception:
            # A database or broker outage must not end the sweeper: the rows wait in
            # PostgreSQL and the next round picks them up once it is back.
            logger.exception("scheduling sweep round failed")
            connection.close()
            close_old_connections()
