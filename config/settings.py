"""Verdict settings: one module, every deployment difference an environment variable.

With no variables set the project runs on embedded defaults (SQLite, local-memory cache,
in-process Celery), so `make run` needs no services. `.env.example` lists every variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated environment variable into a list of non-empty items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
# The embedded default key is only for local runs; production must set DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "verdict-insecure-development-key-change-me")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "simple_history",
    "django_celery_beat",
    "rules_engine",
    "rules_engine.functions",
    "access",
    "lifecycle",
    "experiments",
    "analytics",
    "ingress",
    "scheduling",
    "egress",
]

MIDDLEWARE = [
    # First, so every response (a refused body's 413 too) carries the request id.
    "rules_engine.middleware.RequestIdMiddleware",
    # Before the body limit, so a browser can read a 413 (CORS headers on it too).
    "access.middleware.PublishableKeyCorsMiddleware",
    "rules_engine.middleware.BodySizeLimitMiddleware",
    "rules_engine.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # django-prometheus's, with labelled metric children memoised and counted through
    # rules_engine/tally.py (as the Before one above).
    "rules_engine.middleware.PrometheusAfterMiddleware",
]
# The chain of the express lane (config/express.py): API-key JSON calls the execute and
# new-event hot paths answer. An ordered subset of MIDDLEWARE; the ones left out do nothing for
# such a call (no session, no CSRF cookie for a CSRF-exempt view, the key instead of a session
# user, no flash messages; no history: these calls write no model with history, and a key is
# no Django user to record as the author of a change) and cost about a third of its CPU.
EXPRESS_MIDDLEWARE = [
    "rules_engine.middleware.RequestIdMiddleware",
    # Before the body limit, so a browser can read a 413 (CORS headers on it too).
    "access.middleware.PublishableKeyCorsMiddleware",
    "rules_engine.middleware.BodySizeLimitMiddleware",
    "rules_engine.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "rules_engine.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'verdict.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default is shared by the web, worker and beat processes of `make run`:
    # WAL lets readers run beside the writer, IMMEDIATE transactions take the write lock up
    # front (no upgrade deadlocks), and writers wait instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters travel apart from the SQL (server-side binding) instead of being quoted
    # into it by psycopg in Python: quoting the JSON of an audit row or an event payload
    # client-side cost more CPU than the rest of its INSERT.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env_bool(
        "DATABASE_SERVER_SIDE_BINDING", True
    )
    # A statement run 5 times on a connection becomes a prepared statement: PostgreSQL stops
    # parsing and planning it every time (most of the database's CPU for the short statements
    # of a decision). Django turns this off for the sake of transaction-pooling PgBouncer
    # (before 1.21); set DATABASE_PREPARE_THRESHOLD to "off" behind one.
    _prepare = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5").strip().lower()
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
        None if _prepare in ("", "off", "none") else int(_prepare)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's Redis backend reusing one client per connection pool (config/cache.py);
            # keys and values are stored exactly as Django's own backend stores them.
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "verdict"),
        }
    }
else:
    # Embedded default: a database cache, shared by the web, worker and beat processes of
    # `make run` (the ruleset generation stamp must be seen by all of them).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "verdict_cache",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# Request bodies larger than this are refused with 413 before any parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("VERDICT_MAX_BODY_BYTES", str(256 * 1024)))

REST_FRAMEWORK = {
    # Applications send `Authorization: Api-Key <key>`; people use the admin's session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Keys by scope (read / manage), staff users by their role's model permissions.
    "DEFAULT_PERMISSION_CLASSES": ["access.permissions.ScopeOrModelPermission"],
    # A key limited to some entry points reads and changes only their rows (access/filters.py).
    "DEFAULT_FILTER_BACKENDS": ["access.filters.KeyEntryPointFilter"],
    "DEFAULT_THROTTLE_CLASSES": ["access.throttling.VerdictRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Every endpoint parses JSON with the strict parser: size, depth, length and NUL limits
    # are checked before any view runs (400/413 with the error shape of api/errors.py).
    "DEFAULT_PARSER_CLASSES": ["rules_engine.api.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "rules_engine.api.errors.exception_handler",
}

# Celery. With no broker configured, the embedded default is kombu's filesystem transport in
# var/broker, so `make run` runs a real worker and beat with nothing else installed.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _BROKER_DIR = BASE_DIR / "var" / "broker"
    for _folder in ("queue", "processed", "control"):
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        # Exchange tables (broadcasts such as revokes); kombu's default is ./control.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Celery only ever holds seconds of work (the database holds the rest), so a short
    # visibility timeout is safe and makes a dead worker's messages come back quickly.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "300"))
    }
# Celery's Django fixup closes every database connection before and after each task unless
# this is set, and reconnecting to PostgreSQL cost more than a slice of delayed actions (a
# 12-action task: 36 ms with a new connection, 15 ms without). Connections are recycled
# instead around each task like Django does per request (config/celery.py), and Celery still
# closes them every 2 x this many tasks.
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ.get("CELERY_PREFETCH_MULTIPLIER", "4"))
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A publish that cannot reach the broker fails fast: the row in PostgreSQL is the truth and a
# periodic recovery task publishes it again, so a request never hangs on a broker outage.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic housekeeping; schedules of periodic *events* are edited in the admin (Periodic tasks).
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "verdict-sweep-scheduled-actions": {
        "task": "scheduling.tasks.sweep_scheduled_actions",
        "schedule": 1.0,
    },
    "verdict-recover-scheduled-actions": {
        "task": "scheduling.tasks.recover_scheduled_actions",
        "schedule": 5.0,
    },
    "verdict-recover-events": {"task": "ingress.tasks.recover_events", "schedule": 5.0},
    "verdict-retry-deliveries": {"task": "egress.tasks.retry_due_deliveries", "schedule": 5.0},
    # Analytics (issue 7): add the audit rows behind the lag to the hourly rollups.
    "verdict-rollup-executions": {"task": "analytics.tasks.rollup_executions", "schedule": 30.0},
}

# Verdict engine limits and knobs.
VERDICT: dict[str, Any] = {
    # JSON nesting allowed in a request body (context, rule) before it is refused with 400.
    "MAX_JSON_DEPTH": int(os.environ.get("VERDICT_MAX_JSON_DEPTH", "32")),
    # Compile limits for one JSONLogic expression.
    "MAX_RULE_DEPTH": int(os.environ.get("VERDICT_MAX_RULE_DEPTH", "64")),
    "MAX_RULE_NODES": int(os.environ.get("VERDICT_MAX_RULE_NODES", "5000")),
    # Run-time limits of one rule: items map/filter/reduce/all/some/none/merge (and split) may
    # process or build, characters the string and regex functions take or build, characters
    # of a regular expression. Exceeding one is an error of that rule only.
    "MAX_ARRAY_ITEMS": int(os.environ.get("VERDICT_MAX_ARRAY_ITEMS", "10000")),
    "MAX_STRING_LENGTH": int(os.environ.get("VERDICT_MAX_STRING_LENGTH", "100000")),
    "MAX_PATTERN_LENGTH": int(os.environ.get("VERDICT_MAX_PATTERN_LENGTH", "1000")),
    # Time one decision may spend evaluating its rules (milliseconds, 0: unbounded). Loops and
    # function calls past it fail their rule; rules without them still evaluate.
    "EVALUATION_BUDGET_MS": float(os.environ.get("VERDICT_EVALUATION_BUDGET_MS", "1000")),
    # How often (seconds) a process re-reads the shared ruleset generation stamp: 0 = on every
    # decision; otherwise at most once per interval, which adds up to the interval to how long
    # other processes take to see a change, so it must stay below 1 s (rules_engine/cache.py
    # refuses larger values).
    "CACHE_CHECK_INTERVAL": float(os.environ.get("VERDICT_CACHE_CHECK_INTERVAL", "0")),
    # Events: a processing event is retried after this lease; received events not picked up
    # are published again after EVENT_REPUBLISH_AFTER seconds.
    "EVENT_LEASE_SECONDS": float(os.environ.get("VERDICT_EVENT_LEASE_SECONDS", "60")),
    "EVENT_REPUBLISH_AFTER": float(os.environ.get("VERDICT_EVENT_REPUBLISH_AFTER", "5")),
    "EVENT_MAX_ATTEMPTS": int(os.environ.get("VERDICT_EVENT_MAX_ATTEMPTS", "5")),
    # Events decided per transaction by one processing task (a task takes what has arrived,
    # up to this many, and loops; a full batch calls another worker in to help).
    "EVENT_BATCH": int(os.environ.get("VERDICT_EVENT_BATCH", "20")),
    # How long one processing task keeps looping before it hands over to a fresh task (so a
    # worker under steady load can still stop or restart between tasks).
    "EVENT_TASK_SECONDS": float(os.environ.get("VERDICT_EVENT_TASK_SECONDS", "5")),
    # How long the "a processing task is on its way" mark lives (seconds): while it is set,
    # accepting an event publishes nothing; if its task was lost, the next accept after it
    # expires publishes again (and recovery republishes anything older than REPUBLISH_AFTER).
    "EVENT_DOORBELL_SECONDS": int(os.environ.get("VERDICT_EVENT_DOORBELL_SECONDS", "2")),
    # Audit rows of decisions that wrote nothing else are inserted in batches shared by
    # concurrent requests (group commit); each request still answers only after its batch
    # committed. "false" inserts one row per request in the request's transaction.
    "AUDIT_GROUP_COMMIT": env_bool("VERDICT_AUDIT_GROUP_COMMIT", True),
    # Egress: retries back off with full jitter from BASE doubling up to CAP seconds; a due
    # delivery whose task has not come within REPUBLISH_AFTER s is published again by the
    # periodic scan; a worker holds a delivery it sends for LEASE_SECONDS (at least 4 x the
    # destination's timeout + 5 s).
    "EGRESS_BACKOFF_BASE_SECONDS": float(
        os.environ.get("VERDICT_EGRESS_BACKOFF_BASE_SECONDS", "1")
    ),
    "EGRESS_BACKOFF_CAP_SECONDS": float(
        os.environ.get("VERDICT_EGRESS_BACKOFF_CAP_SECONDS", "300")
    ),
    "EGRESS_REPUBLISH_AFTER": float(os.environ.get("VERDICT_EGRESS_REPUBLISH_AFTER", "10")),
    "EGRESS_LEASE_SECONDS": float(os.environ.get("VERDICT_EGRESS_LEASE_SECONDS", "60")),
    "EGRESS_SCAN_BATCH": int(os.environ.get("VERDICT_EGRESS_SCAN_BATCH", "500")),
    "EGRESS_MAX_PAYLOAD_BYTES": int(os.environ.get("VERDICT_EGRESS_MAX_PAYLOAD_BYTES", "262144")),
    "EGRESS_STREAM_MAXLEN": int(os.environ.get("VERDICT_EGRESS_STREAM_MAXLEN", "0")),
    "EGRESS_STREAM_DEDUPE_SECONDS": int(
        os.environ.get("VERDICT_EGRESS_STREAM_DEDUPE_SECONDS", "604800")
    ),
    # Redis Streams ingress (manage.py ingress_consume; its options override these).
    "INGRESS_STREAM": os.environ.get("VERDICT_INGRESS_STREAM", "verdict:events"),
    "INGRESS_GROUP": os.environ.get("VERDICT_INGRESS_GROUP", "verdict-ingress"),
    "INGRESS_DEAD_LETTER_STREAM": os.environ.get(
        "VERDICT_INGRESS_DEAD_LETTER_STREAM", "verdict:events:dead"
    ),
    "INGRESS_CLAIM_MIN_IDLE_MS": int(os.environ.get("VERDICT_INGRESS_CLAIM_MIN_IDLE_MS", "30000")),
    "INGRESS_RECLAIM_INTERVAL": float(os.environ.get("VERDICT_INGRESS_RECLAIM_INTERVAL", "5")),
    "INGRESS_MAX_DELIVERIES": int(os.environ.get("VERDICT_INGRESS_MAX_DELIVERIES", "5")),
    # Rate limits ("<n>/<second|minute|hour|day>", empty: none): per API key unless the key
    # sets its own, and per staff session user of the API.
    # Analytics rollups read audit rows once they are this old (rows committed later than
    # this after their insert are not counted; see analytics/services.py).
    "ANALYTICS_LAG_SECONDS": float(os.environ.get("VERDICT_ANALYTICS_LAG_SECONDS", "120")),
    "API_KEY_RATE": os.environ.get("VERDICT_API_KEY_RATE", ""),
    "USER_RATE": os.environ.get("VERDICT_USER_RATE", "1200/minute"),
    # emit_event chains deeper than this are refused, so rules cannot loop.
    "MAX_EVENT_DEPTH": int(os.environ.get("VERDICT_MAX_EVENT_DEPTH", "5")),
}

# Scheduling knobs (defaults and meanings in scheduling/conf.py) as VERDICT_SCHEDULE_<NAME>.
for _name, _value in os.environ.items():
    if _name.startswith("VERDICT_SCHEDULE_"):
        VERDICT[_name.removeprefix("VERDICT_")] = float(_value)

# Modules imported at startup to register custom functions or action handlers (comma list).
VERDICT_PLUGINS = env_list("VERDICT_PLUGINS", "")

# Logs: one JSON object per line in production (VERDICT_LOG_FORMAT=json, the default without
# DEBUG), or the plain format; both carry the request id that caused them (config/logging.py).
# Celery workers and beat log through this configuration too (config/celery.py).
LOG_FORMAT = os.environ.get("VERDICT_LOG_FORMAT", "plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"()": "config.logging.PlainFormatter"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # httpx logs every request's full URL at INFO; a webhook URL may carry a token.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# OpenAPI schema of the whole API (drf-spectacular), served at /api/schema/ and /api/docs/.
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Verdict API",
    "DESCRIPTION": "Decisions, events and rule management of the Verdict rules engine.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies and responses are separate components (read-only fields only in answers).
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ExecutionOutcomeEnum": "rules_engine.models.Execution.Outcome",
        "EventStatusEnum": "ingress.models.Event.Status",
    },
    # Views may read self.request while choosing authenticators (rules_engine/api/schema.py).
    "GET_MOCK_REQUEST": "rules_engine.api.schema.build_mock_request",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "rules_engine.api.schema.add_common_errors",
    ],
}

# --- Custom functions (rules_engine/functions): WebAssembly sandbox and named lists ---------
# Defaults for a new WASM function's limits (each function may set its own in the admin):
# fuel is roughly one unit per executed instruction; memory caps each module's linear memory;
# the wall-clock limit stops a call through epoch interruption, checked every EPOCH_TICK_MS.
VERDICT.update(
    {
        "WASM_FUEL": int(os.environ.get("VERDICT_WASM_FUEL", "5000000")),
        "WASM_MAX_MEMORY_BYTES": int(
            os.environ.get("VERDICT_WASM_MAX_MEMORY_BYTES", str(16 * 1024 * 1024))
        ),
        "WASM_TIMEOUT_MS": int(os.environ.get("VERDICT_WASM_TIMEOUT_MS", "50")),
        "WASM_EPOCH_TICK_MS": int(os.environ.get("VERDICT_WASM_EPOCH_TICK_MS", "5")),
        # Uploads above this size are refused; a JSON result above this size is an error.
        "WASM_MAX_MODULE_BYTES": int(
            os.environ.get("VERDICT_WASM_MAX_MODULE_BYTES", str(2 * 1024 * 1024))
        ),
        "WASM_MAX_RESULT_BYTES": int(os.environ.get("VERDICT_WASM_MAX_RESULT_BYTES", "65536")),
        # Named lists: most items one list may hold.
        "NAMED_LIST_MAX_ITEMS": int(os.environ.get("VERDICT_NAMED_LIST_MAX_ITEMS", "100000")),
    }
)

# --- The React frontend (frontend/, served at /app/ by config/frontend.py) -------------------
# The Vite build Django serves; `make frontend` writes it.
FRONTEND_DIST = Path(os.environ.get("VERDICT_FRONTEND_DIST", str(BASE_DIR / "frontend" / "dist")))
# The publishable key the demo checkout sends: this variable, else the file `make run` writes.
VERDICT["FRONTEND_PUBLISHABLE_KEY"] = os.environ.get("VERDICT_FRONTEND_PUBLISHABLE_KEY", "")
FRONTEND_PUBLISHABLE_KEY_FILE = BASE_DIR / "var" / "demo-publishable-key.txt"
