"""`manage.py ingress_consume`: run one Redis Streams ingress consumer until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingress.streams import ConsumerConfig, StreamConsumer, redis_client

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    """Consume the ingress stream as one member of the consumer group (see ingress.streams).

    Prints "ingress_consume ready: ..." once the group exists; on SIGTERM or SIGINT finishes
    the current message, releases the rest of its batch and exits 0. Defaults come from
    settings.VERDICT (INGRESS_*); every option overrides its setting.
    """

    help = "Consume events and cancellations from the Redis ingress stream (consumer group)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stream", help="stream key (INGRESS_STREAM, verdict:events)")
        parser.add_argument("--group", help="consumer group (INGRESS_GROUP, verdict-ingress)")
        parser.add_argument("--consumer", help="consumer name (default <hostname>-<pid>)")
        parser.add_argument(
            "--dead-letter-stream",
            help="where poison messages go (INGRESS_DEAD_LETTER_STREAM, verdict:events:dead)",
        )
        parser.add_argument("--redis-url", help="Redis holding the streams (default REDIS_URL)")
        parser.add_argument("--count", type=int, help="entries per read (100)")
        parser.add_argument("--block-ms", type=int, help="longest wait of one read (1000)")
        parser.add_argument(
            "--claim-min-idle-ms",
            type=int,
            help="idle time after which another consumer's entry is reclaimed (30000)",
        )
        parser.add_argument(
            "--reclaim-interval", type=float, help="seconds between XAUTOCLAIM rounds (5)"
        )
        parser.add_argument(
            "--max-deliveries",
            type=int,
            help="deliveries after which an entry is dead-lettered (5)",
        )
        parser.add_argument(
            "--backoff-max", type=float, help="longest wait between retries, seconds (5)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the consumer loop; returns (exit 0) after a stop signal."""
        config = ConsumerConfig.from_settings(
            stream=options["stream"],
            group=options["group"],
            consumer=options["consumer"],
            dead_letter_stream=options["dead_letter_stream"],
            count=options["count"],
            block_ms=options["block_ms"],
            claim_min_idle_ms=options["claim_min_idle_ms"],
            reclaim_interval=options["reclaim_interval"],
            max_deliveries=options["max_deliveries"],
            backoff_max=options["backoff_max"],
        )
        try:
            client = redis_client(options["redis_url"], block_ms=config.block_ms)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        consumer = StreamConsumer(client, config)

        def stop(signum: int, frame: Any) -> None:
            logger.info("%s received: finishing the current message", signal.Signals(signum).name)
            consumer.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

        def ready() -> None:
            self.stdout.write(
                f"ingress_consume ready: stream={config.stream} group={config.group} "
                f"consumer={config.consumer} dead_letter={config.dead_letter_stream}"
            )
            self.stdout.flush()

        consumer.run(on_ready=ready)
        client.close()
        self.stdout.write(f"ingress_consume stopped: consumer={config.consumer}")
