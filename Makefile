# Verdict: the two commands are `make run` (embedded defaults, no services) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

# The suite's services: the local PostgreSQL and Redis (overridable).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/verdict
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# Each benchmark has its own database and Redis database, so two can run side by side.
SCHED_BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/verdict_bench_sched
SCHED_BENCH_REDIS_URL ?= redis://127.0.0.1:6379/13
EVENTS_BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/verdict_bench_events
EVENTS_BENCH_REDIS_URL ?= redis://127.0.0.1:6379/12

# `make serve`: the production configuration on this machine's PostgreSQL and Redis.
SERVE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/verdict
SERVE_REDIS_URL ?= redis://127.0.0.1:6379/0
WEB_WORKERS ?= 2
WEB_THREADS ?= 4
WORKER_CONCURRENCY ?= 2
SERVE_ENV = DATABASE_URL="$(SERVE_DATABASE_URL)" REDIS_URL="$(SERVE_REDIS_URL)" DJANGO_DEBUG=false

.PHONY: install run serve test lint format services clean bench bench-scale bench-scheduling \
	bench-events bench-http bench-propagation

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,lint]"
	@rm -f $(VENV)/.installed-* && touch $@

run: install
	@mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py rules_load_demo
	$(PY) manage.py demo_admin
	@echo "Demo API key (send it as the header 'Authorization: Api-Key <key>'; kept in var/demo-api-key.txt):"
	@$(PY) manage.py api_key_create --name demo --scopes execute,events,read \
		--save-to var/demo-api-key.txt --reuse
	$(PY) manage.py run_all --addr 127.0.0.1:8000

serve: install
	@scripts/ensure_services.sh "$(SERVE_DATABASE_URL)" "$(SERVE_REDIS_URL)"
	$(SERVE_ENV) $(PY) manage.py migrate --noinput
	$(SERVE_ENV) $(PY) manage.py collectstatic --noinput --verbosity 0
	$(SERVE_ENV) $(PY) manage.py run_all --production --no-demo-events --addr 127.0.0.1:8000 \
		--web-workers $(WEB_WORKERS) --web-threads $(WEB_THREADS) \
		--worker-concurrency $(WORKER_CONCURRENCY)

services:
	@scripts/ensure_services.sh "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install services lint
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" \
		$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

# JSONLogic evaluators side by side (no services needed).
bench: install
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) bench/jsonlogic_bench.py $(BENCH_ARGS)

# Rule-set size vs evaluation time, compile time and memory (no services needed).
bench-scale: install
	$(PY) bench/scale.py $(BENCH_ARGS)

# Delayed-action drift vs plain Celery ETA tasks (needs the local PostgreSQL and Redis).
bench-scheduling: install
	@scripts/ensure_services.sh "$(SCHED_BENCH_DATABASE_URL)" "$(SCHED_BENCH_REDIS_URL)"
	DATABASE_URL="$(SCHED_BENCH_DATABASE_URL)" REDIS_URL="$(SCHED_BENCH_REDIS_URL)" \
		$(PY) bench/scheduling_drift.py $(BENCH_ARGS)

# Accepted-to-decided latency of events over REST and Redis Streams.
bench-events: install
	@scripts/ensure_services.sh "$(EVENTS_BENCH_DATABASE_URL)" "$(EVENTS_BENCH_REDIS_URL)"
	DATABASE_URL="$(EVENTS_BENCH_DATABASE_URL)" REDIS_URL="$(EVENTS_BENCH_REDIS_URL)" \
		$(PY) bench/event_latency.py $(BENCH_ARGS)

# Verdict's execute endpoint vs a naive DRF + json-logic-qubit baseline, under wrk (installed
# from the distribution's packages when missing) and a paced open-loop generator.
HTTP_BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/verdict_bench_http
HTTP_BENCH_REDIS_URL ?= redis://127.0.0.1:6379/11
bench-http: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -q wrk)
	DATABASE_URL="$(HTTP_BENCH_DATABASE_URL)" REDIS_URL="$(HTTP_BENCH_REDIS_URL)" \
		$(PY) bench/http_execute.py $(BENCH_ARGS)

# Rule change propagation across 4 web processes, and the multi-process layout check.
bench-propagation: install
	$(PY) bench/propagation.py $(BENCH_ARGS)
	$(PY) bench/multiprocess_check.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
