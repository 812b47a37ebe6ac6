"""Settings of the naive baseline server: Verdict's settings with the baseline's routes.

Bench-only. `bench/baseline/urls.py` holds the view and the routes. The baseline is served
with the same server configuration as Verdict (`bench/http_execute.py` sets
DJANGO_SETTINGS_MODULE=bench.baseline.settings for the baseline's server only).
"""

from config.settings import *  # noqa: F403  (the baseline runs on exactly Verdict's settings)

ROOT_URLCONF = "bench.baseline.urls"
