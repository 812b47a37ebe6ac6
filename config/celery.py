"""The Celery application: configured from Django settings (CELERY_* names)."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("verdict")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
