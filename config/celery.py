"""The Celery application: configured from Django settings (CELERY_* names).

Workers and beat log through Django's LOGGING (JSON in production, config/logging.py) at the
level given by `--loglevel`. Every task published while a request id is bound carries it in a
message header, and the worker binds it again while the task runs, so the task's logs, the
tasks it publishes and the deliveries it sends all carry the id of the request that began it.
"""

import logging
import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import (
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
)
from django.db import close_old_connections

from config.logging import request_id_var, task_var
from rules_engine import tally

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# The message header that carries the request id from publisher to worker.
REQUEST_ID_TASK_HEADER = "verdict_request_id"

app = Celery("verdict")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(loglevel: Any = None, **_: Any) -> None:
    """Log through Django's LOGGING (one format for web, worker and beat), not Celery's own
    handlers; the command line's --loglevel still sets the level."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Put the bound request id in the message's headers (nothing outside a request/task)."""
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_TASK_HEADER, request_id)


@task_prerun.connect
def _bind_task_context(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    """Bind the task's request id (from its message headers) and its id/name for logs.

    Eager tasks run inside their caller, whose request id stays bound.
    """
    request = getattr(sender, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return
    request_id_var.set(getattr(request, REQUEST_ID_TASK_HEADER, None) or None)
    task_var.set((task_id or "", getattr(sender, "name", "") or ""))


@task_postrun.connect
def _unbind_task_context(sender: Any = None, **_: Any) -> None:
    """Clear the task's request id and ids, so the next task on this worker starts clean."""
    request = getattr(sender, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return
    request_id_var.set(None)
    task_var.set(None)


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(sender: Any = None, **_: Any) -> None:
    """Around each task, drop connections that broke or outlived CONN_MAX_AGE, as Django does
    around each request. (CELERY_DB_REUSE_MAX stops Celery closing every connection per task.)

    Eager tasks run inside their caller's connection and maybe its transaction: left alone.
    """
    request = getattr(sender, "request", None)
    if request is not None and getattr(request, "is_eager", False):
        return
    close_old_connections()


@worker_process_shutdown.connect
def _flush_counts(**_: Any) -> None:
    """A pool process ends with os._exit, which skips exit handlers: add its last second of
    hot-path counts to the metrics first (rules_engine/tally.py)."""
    tally.flush()
