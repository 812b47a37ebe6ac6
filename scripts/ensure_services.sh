#!/usr/bin/env bash
# Make sure the test suite's PostgreSQL and Redis are up and the database exists.
# Starts them when they are installed but stopped; fails with a clear message when absent.
set -euo pipefail

DATABASE_URL="${1:?database url}"
REDIS_URL="${2:?redis url}"

# postgres://user@host:port/name
pg_rest="${DATABASE_URL#*://}"
pg_user="${pg_rest%%@*}"
pg_hostport="${pg_rest#*@}"; pg_hostport="${pg_hostport%%/*}"
pg_host="${pg_hostport%%:*}"
pg_port="${pg_hostport##*:}"
pg_db="${DATABASE_URL##*/}"

redis_rest="${REDIS_URL#*://}"; redis_rest="${redis_rest%%/*}"
redis_host="${redis_rest%%:*}"
redis_port="${redis_rest##*:}"

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; }
redis_up() { redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null | grep -q PONG; }

if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
  echo "error: PostgreSQL client tools (pg_isready, psql) are not installed; the test suite" >&2
  echo "       needs PostgreSQL at $pg_host:$pg_port (install postgresql or set TEST_DATABASE_URL)" >&2
  exit 1
fi
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL ..."
    for version in /etc/postgresql/*; do
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
    done
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "error: PostgreSQL is not reachable at $pg_host:$pg_port" >&2; exit 1; }
fi

if ! command -v redis-cli >/dev/null; then
  echo "error: redis-cli is not installed; the test suite needs Redis at $redis_host:$redis_port" >&2
  exit 1
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis ..."
    mkdir -p /tmp/verdict-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" \
      --appendonly no --dir /tmp/verdict-redis --logfile /tmp/verdict-redis/redis.log
    for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  fi
  redis_up || { echo "error: Redis is not reachable at $redis_host:$redis_port" >&2; exit 1; }
fi

exists=$(psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = '$pg_db'")
if [ "$exists" != "1" ]; then
  echo "creating database $pg_db ..."
  psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -qc "CREATE DATABASE \"$pg_db\""
fi
echo "services ready: PostgreSQL $pg_host:$pg_port/$pg_db, Redis $redis_host:$redis_port"
