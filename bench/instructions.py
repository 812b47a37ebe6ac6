"""CPU instructions per execute call, counted by valgrind: a measure the shared machine's noise
does not move.

The HTTP bench (`bench/http_execute.py`) measures what users see, but on two shared cores its
rps and CPU per request move by 10-30 % between runs and 2x between hours, which hides the
changes a single commit makes. This bench runs the same request bodies in one process through
the WSGI application itself (`config.wsgi.application`: the express lane, the middleware, the
engine, the audit writer thread, a real PostgreSQL COPY; no server, no network) under
`valgrind --tool=callgrind`, and counts the instructions the process executes: the same code
on the same input gives the same count within about 0.5 %, whatever else the machine does.

Each target runs twice: warm-up requests plus 1, and warm-up plus N (the same bodies again, so
rule sets, templates and memos are warm); the difference over N is the cost of one warm call.
The cyclic garbage collector is off while counting (its collections land on different requests
from one build to the next and would add noise, not signal). Instructions are not time: system
calls (the kernel's share) and waits are not counted, and an instruction of the interpreter's
loop costs less than one of a JSON parser; the HTTP bench stays the measure of record.

    python bench/instructions.py [--requests 600] [--against REV] [--baseline] [--key-cost]

`--against REV` counts a git revision too (checked out in a temporary worktree), for an exact
before/after; `--baseline` counts the naive baseline endpoint of the HTTP bench; `--key-cost`
counts this tree once more with the API key check of the hot path (cache lookup, origin,
scopes) replaced by the key it verified on the first call, so the difference is what checking
a key costs a call. Environment as `bench/http_execute.py`. Prints a table and writes
bench/results/instructions.json.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script: bench/ is on the path, and http_execute puts the project root there too.
import http_execute as http

ROOT = http.ROOT

KEY_NAME = "bench:instructions"


def drive(*, path: str, warm: int, count: int, authorization: str, key_check: bool = True) -> None:
    """In this process: `warm` calls, then `count` more over the same bodies with the garbage
    collector off (and, without `key_check`, the hot path's key check answered by the key it
    verified first). Raises SystemExit if any answer is not 200."""
    # The parent set up the database, the workload and the key; this process only serves.
    import django

    django.setup()
    from config.wsgi import application

    _, contexts = http.workload()
    bodies = http.request_bodies(http.ENTRY_POINT, contexts)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    def call(body: bytes) -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        if authorization:
            environ["HTTP_AUTHORIZATION"] = authorization
        response = application(environ, start_response)
        b"".join(response)
        if hasattr(response, "close"):
            response.close()

    for body in bodies[:warm]:
        call(body)
    if not key_check:
        skip_key_check()
    gc.collect()
    gc.disable()
    for body in bodies[:count]:
        call(body)
    refused = [status for status in statuses if not status.startswith("200")]
    if refused:
        raise SystemExit(f"{len(refused)} calls were not answered 200: {refused[:3]}")


def skip_key_check() -> None:
    """Make the execute hot path take the key it verifies next as verified for every later
    call: what remains of a call is its cost without checking a key."""
    from rules_engine.api import hot_path

    check = hot_path.checked_key
    verified: list[Any] = []

    def first_key(view: Any, request: Any) -> Any:
        if not verified:
            verified.append(check(view, request))
        return verified[0]

    hot_path.checked_key = first_key


def counted(cwd: Path, env: dict[str, str], args: list[str]) -> int:
    """Instructions valgrind counted for `bench/instructions.py --drive ...` run in `cwd`."""
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out.name}",
                sys.executable,
                str(cwd / "bench" / "instructions.py"),
                "--drive",
                *args,
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(
            f"valgrind run failed in {cwd}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return int(found.group(1))


def per_call(
    cwd: Path,
    *,
    settings: str,
    path: str,
    authorization: str,
    requests: int,
    extra: tuple[str, ...] = (),
) -> int:
    """Instructions of one warm call: (warm + requests) - (warm + 1), over requests - 1."""
    # Hashing fixed, and hardly a generation re-read while counting (valgrind slows each
    # call about 50x).
    env = http.bench_env(
        settings_module=settings, PYTHONHASHSEED="0", VERDICT_CACHE_CHECK_INTERVAL="0.9"
    )
    common = ["--path", path, "--warm", str(requests), "--authorization", authorization, *extra]
    with ThreadPoolExecutor(max_workers=2) as pool:
        short = pool.submit(counted, cwd, env, [*common, "--count", "1"])
        long = pool.submit(counted, cwd, env, [*common, "--count", str(requests)])
        return round((long.result() - short.result()) / (requests - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--against", help="a git revision to count too")
    parser.add_argument("--baseline", action="store_true", help="count the naive baseline too")
    parser.add_argument(
        "--key-cost", action="store_true", help="count this tree without the key check too"
    )
    parser.add_argument("--output", type=Path, default=http.RESULTS / "instructions.json")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", default=http.EXECUTE_PATH, help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--authorization", default="", help=argparse.SUPPRESS)
    parser.add_argument("--no-key-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(
            path=args.path,
            warm=args.warm,
            count=args.count,
            authorization=args.authorization,
            key_check=not args.no_key_check,
        )
        return

    if subprocess.run(["valgrind", "--version"], capture_output=True, check=False).returncode:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    http.setup_django()
    http.ensure_workload()
    # One key for every count: creating a key moves the rule-cache generation.
    authorization = http.bench_api_key_headers(KEY_NAME)["Authorization"]
    # (name, checkout, settings, path, authorization, extra driver arguments)
    targets: list[tuple[str, Path, str, str, str, tuple[str, ...]]] = [
        ("verdict", ROOT, "config.settings", http.EXECUTE_PATH, authorization, ())
    ]
    if args.key_cost:
        targets.append(
            (
                "verdict without key check",
                ROOT,
                "config.settings",
                http.EXECUTE_PATH,
                authorization,
                ("--no-key-check",),
            )
        )
    worktree = None
    if args.against:
        # Beside this checkout, so the worktree finds the shared workload where this one does.
        worktree = Path(tempfile.mkdtemp(prefix=".verdict-instructions-", dir=ROOT.parent))
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), args.against],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        # The worktree lacks this file at older revisions: run this one against its code.
        (worktree / "bench" / "instructions.py").write_text(Path(__file__).read_text())
        targets.append(
            (
                f"verdict at {args.against}",
                worktree,
                "config.settings",
                http.EXECUTE_PATH,
                authorization,
                (),
            )
        )
    if args.baseline:
        targets.append(("baseline", ROOT, "bench.baseline.settings", http.BASELINE_PATH, "", ()))
    rows: list[dict[str, Any]] = []
    try:
        for name, cwd, settings, path, key, extra in targets:
            instructions = per_call(
                cwd,
                settings=settings,
                path=path,
                authorization=key,
                requests=args.requests,
                extra=extra,
            )
            rows.append({"target": name, "instructions_per_call": instructions})
            print(f"{name:32} {instructions:>12,} instructions per call", flush=True)
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=ROOT,
                check=False,
                capture_output=True,
            )
    first = rows[0]["instructions_per_call"]
    for row in rows[1:]:
        row["ratio_to_verdict"] = round(row["instructions_per_call"] / first, 3)
        print(f"{row['target']:32} {row['ratio_to_verdict']:>12.3f}x Verdict's count")
    http.RESULTS.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "requests": args.requests,
                "code": http.code_state(),
                "machine": http.machine_info(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
