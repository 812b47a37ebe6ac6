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
# A decision waits for the commit of its audit row's batch; more threads per process share
# each commit (bench/README.md, "Server shapes").
WEB_THREADS ?= 16
WORKER_CONCURRENCY ?= 2
# Production: every web process re-reads the rule-set generation stamp at most every 100 ms
# instead of on every request (a change is still served everywhere within the second).
SERVE_ENV = DATABASE_URL="$(SERVE_DATABASE_URL)" REDIS_URL="$(SERVE_REDIS_URL)" DJANGO_DEBUG=false \
	VERDICT_CACHE_CHECK_INTERVAL=$${VERDICT_CACHE_CHECK_INTERVAL:-0.1}

.PHONY: install run serve test lint format services clean bench bench-scale bench-scheduling \
	bench-events bench-http bench-instructions bench-propagation frontend frontend-deps chromium

# The React app (frontend/): npm packages when the lock file changed, a build when a source
# did. The browser tests drive the distribution's Chromium; Playwright never downloads one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
CHROMIUM := /usr/bin/chromium
# npm writes node_modules/.package-lock.json on every install.
FRONTEND_DEPS := frontend/node_modules/.package-lock.json
FRONTEND_BUILD := frontend/dist/.verdict-built
FRONTEND_SOURCES := $(shell find frontend/src frontend/public -type f 2>/dev/null) \
	$(wildcard frontend/index.html frontend/package.json frontend/package-lock.json \
	frontend/vite.config.* frontend/tsconfig*.json)

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,lint]"
	@rm -f $(VENV)/.installed-* && touch $@

run: install frontend
	@mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py rules_load_demo
	$(PY) manage.py demo_admin
	@echo "Demo API key (send it as the header 'Authorization: Api-Key <key>'; kept in var/demo-api-key.txt):"
	@$(PY) manage.py api_key_create --name demo --scopes execute,events,read \
		--save-to var/demo-api-key.txt --reuse
	@# The demo checkout's publishable key (read by /app/ from the file).
	@$(PY) manage.py api_key_create --name demo-web --kind publishable --scopes execute \
		--entry-points checkout --origins http://127.0.0.1:8000,http://localhost:8000 \
		--save-to var/demo-publishable-key.txt --reuse >/dev/null
	@echo "Demo checkout: http://127.0.0.1:8000/app/ (playground and builder: /app/playground, /app/builder)"
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

lint: install frontend-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	cd frontend && npm run lint && npm run typecheck

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The Python suite includes the browser tests (tests/e2e), which then must not skip.
test: install services lint frontend chromium
	cd frontend && npm test
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" VERDICT_E2E_REQUIRED=1 \
		$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

frontend: $(FRONTEND_BUILD)

$(FRONTEND_BUILD): $(FRONTEND_DEPS) $(FRONTEND_SOURCES)
	cd frontend && npm run build
	@touch $@

frontend-deps: $(FRONTEND_DEPS)

$(FRONTEND_DEPS): $(wildcard frontend/package.json frontend/package-lock.json)
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to build frontend/" >&2; exit 1; }
	cd frontend && npm ci --no-audit --no-fund
	@touch $@

# Chromium from the distribution's packages, for the browser tests.
chromium:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q chromium) || { echo "Could not install the chromium package," \
		"which the browser tests need: run 'apt-get install chromium' as root." >&2; exit 1; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is still missing after installing chromium" >&2; exit 1; }

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

# The same execute calls in one process under valgrind: instructions per call, a count the
# shared machine's noise does not move (BENCH_ARGS="--against REV --baseline" to compare).
bench-instructions: install
	@command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -q valgrind)
	DATABASE_URL="$(HTTP_BENCH_DATABASE_URL)" REDIS_URL="$(HTTP_BENCH_REDIS_URL)" \
		$(PY) bench/instructions.py $(BENCH_ARGS)

# Rule change propagation across 4 web processes, and the multi-process layout check.
bench-propagation: install
	$(PY) bench/propagation.py $(BENCH_ARGS)
	$(PY) bench/multiprocess_check.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis frontend/dist \
		frontend/node_modules tests/e2e/artifacts
