"""Writes of lifecycle: label imports, backtests (start, run, cancel) and event backfills.

Backtests replay stored history through the live and a candidate rule set in memory
(`lifecycle.evaluation`): nothing is audited, no action runs, no cooldown is claimed. Over
audit snapshots (source "executions") the rules see the MASKED context: the entry point's
sensitive paths read "***", so conditions on them behave differently than they did live;
stored events (source "events") keep full payloads.

Backfills re-decide stored events through the live rules for real (`engine.execute`), at
most once per window and event (a BackfillRun and one BackfilledEvent row per event).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ingress.models import Event
from lifecycle import selectors
from lifecycle.evaluation import candidate_ruleset, decide, live_ruleset
from lifecycle.models import BackfilledEvent, BackfillRun, Backtest, Label
from lifecycle.reports import Report
from rules_engine import audit, engine
from rules_engine.errors import ErrorDetail, InvalidContext, InvalidInput, NotFound
from rules_engine.functions.lists import normalize_items
from rules_engine.functions.models import NamedList
from rules_engine.functions.services import named_list_update
from rules_engine.models import EntryPoint, Execution, Rule
from rules_engine.services import User, _real_user

logger = logging.getLogger(__name__)

LABEL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{0,49}$")


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, "VERDICT", {}).get(name, default))


# --- labels ----------------------------------------------------------------------------------


@dataclass
class _LabelRow:
    row: int
    label: str
    execution_id: str | None = None
    event_id: str | None = None
    event_ref: tuple[str, str] | None = None  # (source, key)


def _csv_records(file: IO[bytes] | IO[str] | bytes | str) -> list[list[str]]:
    """The records of a CSV upload (UTF-8, a BOM allowed). Raises InvalidInput (invalid_csv)."""
    raw: Any = file if isinstance(file, (bytes, str)) else file.read()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            message = f"the file is not UTF-8 text: {exc}"
            raise InvalidInput([{"path": "$", "message": message}], "invalid_csv") from exc
    try:
        return list(csv.reader(io.StringIO(raw)))
    except csv.Error as exc:
        raise InvalidInput([{"path": "$", "message": f"not CSV: {exc}"}], "invalid_csv") from exc


def _read_csv(file: IO[bytes] | IO[str] | bytes | str) -> list[dict[str, str]]:
    """Rows of a CSV upload as dicts with lower-case headers. Raises InvalidInput."""
    rows = _csv_records(file)
    if not rows:
        raise InvalidInput([{"path": "$", "message": "the file is empty"}], code="invalid_csv")
    header = [name.strip().lower() for name in rows[0]]
    return [dict(zip(header, (cell.strip() for cell in row), strict=False)) for row in rows[1:]]


def labels_import_csv(
    *, file: IO[bytes] | IO[str] | bytes | str, user: User = None, source: str = "csv"
) -> dict[str, Any]:
    """Import outcome labels from CSV; every valid row is upserted, the others reported.

    Columns: `label` and one of `execution_id`, `event_id`, or `event_key` (with `source`,
    default "api"). Labels are upper-cased: FRAUD, NORMAL, CHARGEBACK or a custom name of
    letters, digits, "_" and "-". Row numbers count the header as row 1, as a spreadsheet
    does. Returns {"rows", "accepted", "created", "updated", "rejected": [{"row", "reason"}],
    "labels": {label: count}}. Raises InvalidInput (invalid_csv) when the file itself is
    unusable (not UTF-8 CSV, no `label` column, no id column); nothing is written then. Writes
    the accepted rows' Label rows in one transaction (an execution or event labelled before
    gets the new label).
    """
    records = _read_csv(file)
    header = set(records[0]) if records else set()
    if records and "label" not in header:
        raise InvalidInput([{"path": "$.label", "message": "no 'label' column"}], "invalid_csv")
    if records and not header & {"execution_id", "event_id", "event_key"}:
        message = "no 'execution_id', 'event_id' or 'event_key' column"
        raise InvalidInput([{"path": "$", "message": message}], code="invalid_csv")
    rejected: list[dict[str, Any]] = []
    parsed: list[_LabelRow] = []
    rows = 0
    for number, record in enumerate(records, start=2):
        if not any(record.values()):
            continue  # blank line
        rows += 1
        row, reason = _parse_label_row(number, record)
        if row is None:
            rejected.append({"row": number, "reason": reason})
        else:
            parsed.append(row)
    accepted = _resolve_label_targets(parsed, rejected)
    created, updated = _upsert_labels(accepted, user=user, source=source[:200])
    rejected.sort(key=lambda r: r["row"])
    counts: dict[str, int] = {}
    for row in accepted:
        counts[row.label] = counts.get(row.label, 0) + 1
    return {
        "rows": rows,
        "accepted": len(accepted),
        "created": created,
        "updated": updated,
        "rejected": rejected,
        "labels": dict(sorted(counts.items())),
    }


def _parse_label_row(number: int, record: dict[str, str]) -> tuple[_LabelRow | None, str]:
    label = record.get("label", "").upper()
    refs = [name for name in ("execution_id", "event_id", "event_key") if record.get(name)]
    if not refs:
        return None, "no execution_id, event_id or event_key"
    if len(refs) > 1:
        return None, f"give only one of {', '.join(refs)}"
    if not label:
        return None, "the label is empty"
    if not LABEL_RE.match(label):
        return None, f"invalid label {label[:60]!r}: up to 50 letters, digits, '_' or '-'"
    ref = refs[0]
    value = record[ref]
    if ref == "event_key":
        return _LabelRow(number, label, event_ref=(record.get("source") or "api", value)), ""
    try:
        parsed = str(uuid.UUID(value))
    except ValueError:
        return None, f"{ref} {value[:60]!r} is not a UUID"
    if ref == "execution_id":
        return _LabelRow(number, label, execution_id=parsed), ""
    return _LabelRow(number, label, event_id=parsed), ""


def _resolve_label_targets(
    rows: list[_LabelRow], rejected: list[dict[str, Any]]
) -> list[_LabelRow]:
    """Keep the rows whose execution or event exists, once per target; reject the rest."""
    executions = {
        str(pk)
        for pk in Execution.objects.filter(
            pk__in=[r.execution_id for r in rows if r.execution_id]
        ).values_list("pk", flat=True)
    }
    events = {
        str(pk)
        for pk in Event.objects.filter(pk__in=[r.event_id for r in rows if r.event_id]).values_list(
            "pk", flat=True
        )
    }
    keys = [r.event_ref for r in rows if r.event_ref]
    by_key: dict[tuple[str, str], str] = {}
    for source in {source for source, _ in keys}:
        wanted = [key for s, key in keys if s == source]
        for pk, key in Event.objects.filter(source=source, key__in=wanted).values_list("pk", "key"):
            by_key[(source, key)] = str(pk)
    accepted: list[_LabelRow] = []
    seen: dict[str, int] = {}
    for row in rows:
        if row.execution_id:
            target, missing = f"x:{row.execution_id}", row.execution_id not in executions
            reason = f"no execution {row.execution_id}"
        else:
            if row.event_ref:
                row.event_id = by_key.get(row.event_ref)
                reason = f"no event with source {row.event_ref[0]!r} and key {row.event_ref[1]!r}"
            else:
                reason = f"no event {row.event_id}"
            missing = row.event_id is None or (not row.event_ref and row.event_id not in events)
            target = f"e:{row.event_id}"
        if missing:
            rejected.append({"row": row.row, "reason": reason})
        elif target in seen:
            rejected.append({"row": row.row, "reason": f"row {seen[target]} labels the same"})
        else:
            seen[target] = row.row
            accepted.append(row)
    return accepted


@transaction.atomic
def _upsert_labels(rows: list[_LabelRow], *, user: User, source: str) -> tuple[int, int]:
    creator = _real_user(user)
    execution_ids = [r.execution_id for r in rows if r.execution_id]
    event_ids = [r.event_id for r in rows if r.event_id and not r.execution_id]
    existing = Label.objects.filter(execution_id__in=execution_ids).count()
    existing += Label.objects.filter(event_id__in=event_ids).count()
    for unique, subset in (
        ("execution", [r for r in rows if r.execution_id]),
        ("event", [r for r in rows if not r.execution_id]),
    ):
        if not subset:
            continue
        Label.objects.bulk_create(
            [
                Label(
                    execution_id=r.execution_id,
                    event_id=None if r.execution_id else r.event_id,
                    label=r.label,
                    source=source,
                    created_by=creator,
                )
                for r in subset
            ],
            update_conflicts=True,
            unique_fields=[unique],
            update_fields=["label", "source", "created_by", "updated_at"],
            batch_size=1000,
        )
    return len(rows) - existing, existing


# --- backtests -------------------------------------------------------------------------------


def backtest_start(
    *,
    entry_point: EntryPoint | str,
    window_from: datetime,
    window_to: datetime,
    candidate: Any,
    rule: Rule | None = None,
    mode: str | None = None,
    source: str = Backtest.Source.EXECUTIONS,
    positive_labels: list[str] | None = None,
    sample_size: int = 10,
    note: str = "",
    user: User = None,
    enqueue: bool = True,
) -> Backtest:
    """Queue a backtest of a candidate rule (a dict) or rule set (a list) over a time window.

    The candidate is compiled first (in memory), so a backtest that cannot run is refused
    now. Raises NotFound for an unknown or inactive entry point, InvalidInput
    (invalid_backtest / invalid_candidate) with every problem and its path. Writes one
    Backtest row (queued) and, with `enqueue`, publishes `run_backtest` once it commits.
    """
    if isinstance(entry_point, str):
        found = selectors.entry_point_by_key(key=entry_point)
        if found is None:
            raise NotFound("unknown_entry_point", f"no entry point {entry_point!r}")
        entry_point = found
    mode = mode or (Backtest.Mode.RULESET if isinstance(candidate, list) else Backtest.Mode.RULE)
    errors: list[ErrorDetail] = []
    if window_from >= window_to:
        errors.append({"path": "$.window_to", "message": "must be after window_from"})
    if source not in Backtest.Source.values:
        errors.append({"path": "$.source", "message": f"one of {', '.join(Backtest.Source)}"})
    if rule is not None and rule.entry_point_id != entry_point.pk:
        errors.append({"path": "$.rule", "message": "the rule belongs to another entry point"})
    if rule is not None and mode != Backtest.Mode.RULE:
        errors.append({"path": "$.rule", "message": "only for a one-rule candidate"})
    labels = positive_labels
    if labels is not None and not (
        isinstance(labels, list) and labels and all(isinstance(x, str) and x for x in labels)
    ):
        errors.append({"path": "$.positive_labels", "message": "a non-empty list of labels"})
    if not 0 <= sample_size <= 1000:
        errors.append({"path": "$.sample_size", "message": "between 0 and 1000"})
    if errors:
        raise InvalidInput(errors, code="invalid_backtest")
    candidate_ruleset(entry_point=entry_point, mode=mode, rule=rule, candidate=candidate)
    backtest = Backtest.objects.create(
        entry_point=entry_point,
        mode=mode,
        rule=rule,
        candidate=candidate,
        source=source,
        window_from=window_from,
        window_to=window_to,
        sample_size=sample_size,
        note=note[:200],
        created_by=_real_user(user),
        **({"positive_labels": [x.upper() for x in labels]} if labels else {}),
    )
    if enqueue:
        transaction.on_commit(lambda: _publish_backtest(backtest.pk))
    return backtest


def _publish_backtest(backtest_id: int) -> None:
    from lifecycle.tasks import run_backtest

    try:
        run_backtest.delay(backtest_id)
    except Exception:
        # The row stays queued; `manage.py rules_backtest` or the admin's start runs it again.
        logger.warning("could not publish backtest %s", backtest_id, exc_info=True)


def backtest_cancel(*, backtest: Backtest) -> bool:
    """Cancel a queued or running backtest; a running one stops after its current chunk.

    Returns whether it was open (a finished backtest is left as it is). Writes the row.
    """
    now = timezone.now()
    cancelled = Backtest.objects.filter(
        pk=backtest.pk, status__in=[str(s) for s in Backtest.OPEN_STATUSES]
    ).update(status=Backtest.Status.CANCELLED, finished_at=now, updated_at=now)
    backtest.refresh_from_db()
    return bool(cancelled)


Progress = Callable[[Backtest], None]


def backtest_run(
    *, backtest_id: int, chunk_size: int | None = None, on_chunk: Progress | None = None
) -> Backtest | None:
    """Run a queued backtest to the end, chunk by chunk; None when it is not open any more.

    Claims the row (queued or running -> running, attempt + 1: a redelivered task starts over
    and the older run, if still alive, stops at its next chunk). After each chunk writes the
    progress and stops if the backtest was cancelled (its partial report is kept). A rule set
    that no longer compiles, or any other error, fails the backtest with the message. Writes
    the Backtest row only; `on_chunk` is called with it after each chunk.
    """
    now = timezone.now()
    claimed = Backtest.objects.filter(
        pk=backtest_id, status__in=[str(s) for s in Backtest.OPEN_STATUSES]
    ).update(
        status=Backtest.Status.RUNNING,
        attempt=F("attempt") + 1,
        started_at=now,
        updated_at=now,
        processed=0,
        error="",
    )
    if not claimed:
        return None
    backtest = Backtest.objects.select_related("entry_point", "rule").get(pk=backtest_id)
    try:
        return _backtest_chunks(backtest, chunk_size or _setting("BACKTEST_CHUNK", 500), on_chunk)
    except Exception as exc:
        logger.exception("backtest %s failed", backtest_id)
        message = exc.message if isinstance(exc, NotFound) else str(exc)
        Backtest.objects.filter(pk=backtest_id, attempt=backtest.attempt).update(
            status=Backtest.Status.FAILED,
            error=message[:2000],
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        backtest.refresh_from_db()
        return backtest


def _backtest_chunks(backtest: Backtest, chunk_size: int, on_chunk: Progress | None) -> Backtest:
    current = live_ruleset(entry_point=backtest.entry_point)
    candidate = candidate_ruleset(
        entry_point=backtest.entry_point,
        mode=backtest.mode,
        rule=backtest.rule,
        candidate=backtest.candidate,
    )
    names = {rule.id: rule.name for rule in current.rules}
    names.update({rule.id: rule.name for rule in candidate.rules})
    report = Report(
        rule_names=names,
        current_rules={rule.id for rule in current.rules},
        candidate_rules={rule.id for rule in candidate.rules},
        positive_labels=list(backtest.positive_labels),
        sample_size=backtest.sample_size,
        seed=backtest.pk,
    )
    total = selectors.history_count(backtest=backtest)
    Backtest.objects.filter(pk=backtest.pk).update(total=total)
    backtest.total = total
    processed = 0
    events = backtest.source == Backtest.Source.EVENTS
    for chunk in selectors.history_chunks(backtest=backtest, chunk_size=chunk_size):
        if events:
            labels = selectors.labels_for_events(
                ids=[item["id"] for item in chunk],
                executions={
                    item["id"]: item["execution_id"] for item in chunk if item["execution_id"]
                },
            )
        else:
            labels = selectors.labels_for_executions(ids=[item["id"] for item in chunk])
        for item in chunk:
            _replay(report, item, current, candidate, labels.get(item["id"]))
        processed += len(chunk)
        backtest.processed = processed
        if on_chunk is not None:
            on_chunk(backtest)
        # The progress write is also the cancellation check: it only touches a running row.
        still_running = Backtest.objects.filter(
            pk=backtest.pk, status=Backtest.Status.RUNNING, attempt=backtest.attempt
        ).update(processed=processed, updated_at=timezone.now())
        if not still_running:
            # Cancelled (or superseded by a newer attempt): keep what was found so far.
            Backtest.objects.filter(
                pk=backtest.pk, status=Backtest.Status.CANCELLED, attempt=backtest.attempt
            ).update(processed=processed, results=report.as_json())
            backtest.refresh_from_db()
            return backtest
    now = timezone.now()
    Backtest.objects.filter(
        pk=backtest.pk, status=Backtest.Status.RUNNING, attempt=backtest.attempt
    ).update(
        status=Backtest.Status.DONE,
        processed=processed,
        results=report.as_json(),
        finished_at=now,
        updated_at=now,
    )
    backtest.refresh_from_db()
    return backtest


def _replay(report: Report, item: dict[str, Any], current: Any, candidate: Any, label: Any) -> None:
    context = item["context"]
    at = item["at"]
    # An audit snapshot keeps the `$now` its rules read; replay with that instant.
    if isinstance(context, dict) and isinstance(context.get(engine.NOW_VAR), str):
        parsed = parse_datetime(context[engine.NOW_VAR])
        at = parsed if parsed is not None and parsed.tzinfo is not None else at
    try:
        before = decide(ruleset=current, context=context, now=at)
        after = decide(ruleset=candidate, context=context, now=at)
    except Exception as exc:  # noqa: BLE001  (one bad stored context must not end the backtest)
        report.error(item["id"], f"{type(exc).__name__}: {exc}")
        return
    report.add(item["id"], before, after, label)


# --- backfills -------------------------------------------------------------------------------


def backfill_key(*, window_from: datetime, window_to: datetime, event_type: str | None) -> str:
    """The id of a backfill of this window and type: `backfill:<16 hex digits>`."""
    text = f"{event_type or '*'}|{window_from.isoformat()}|{window_to.isoformat()}"
    return "backfill:" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class BackfillSummary:
    """What a backfill found (dry run) or did (apply), for the command to print."""

    key: str
    apply: bool
    total: int = 0
    unchanged: int = 0
    changed: int = 0
    new: int = 0
    failed: int = 0
    applied: int = 0
    skipped: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)


def _decision_of(execution: Execution | None) -> dict[str, Any] | None:
    if execution is None:
        return None
    return {
        "outcome": execution.outcome,
        "matched": sorted(str(r.get("name")) for r in execution.matched_rules or ()),
    }


def events_backfill(
    *,
    window_from: datetime,
    window_to: datetime,
    event_type: str | None = None,
    apply: bool = False,
    chunk_size: int = 200,
    on_progress: Callable[[int, int], None] | None = None,
    max_changes: int = 1000,
) -> BackfillSummary:
    """Re-decide the stored events of a window with the current rules.

    Dry run (default): each event is decided with `dry_run=True` and compared with its stored
    decision; nothing is written. With `apply`: each event not yet backfilled by this window's
    run is decided for real (`engine.execute`: actions run, a new Execution row with request
    id `<key>:<event id>` and caller "backfill"), and a BackfilledEvent row records it in the
    same transaction, so running it twice writes each decision once. The event keeps its
    original execution. Events whose entry point is gone or whose payload no longer fits the
    schema are counted as failed. Raises InvalidInput for an empty window. Writes (apply
    only) BackfillRun, BackfilledEvent, Execution and what the actions write.
    """
    if window_from >= window_to:
        raise InvalidInput([{"path": "$.to", "message": "must be after from"}], "invalid_window")
    key = backfill_key(window_from=window_from, window_to=window_to, event_type=event_type)
    summary = BackfillSummary(key=key, apply=apply)
    events = selectors.backfill_events(
        window_from=window_from, window_to=window_to, event_type=event_type
    )
    summary.total = events.count()
    run = None
    if apply:
        run, _ = BackfillRun.objects.get_or_create(
            key=key,
            defaults={
                "event_type": event_type or "",
                "window_from": window_from,
                "window_to": window_to,
            },
        )
    done = 0
    for chunk in _chunks(events.iterator(chunk_size=chunk_size), chunk_size):
        skip = (
            selectors.backfilled_event_ids(run=run, event_ids=[str(e.pk) for e in chunk])
            if run
            else set()
        )
        for event in chunk:
            if str(event.pk) in skip:
                summary.skipped += 1
            else:
                _backfill_one(summary, event, run, max_changes)
            done += 1
        if on_progress is not None:
            on_progress(done, summary.total)
    if run is not None:
        BackfillRun.objects.filter(pk=run.pk).update(
            total=summary.total,
            applied=F("applied") + summary.applied,
            skipped=summary.skipped,
            failed=summary.failed,
            runs=F("runs") + 1,
            updated_at=timezone.now(),
        )
    return summary


def _chunks(items: Iterable[Event], size: int) -> Iterable[list[Event]]:
    chunk: list[Event] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _backfill_one(
    summary: BackfillSummary, event: Event, run: BackfillRun | None, max_changes: int
) -> None:
    before = _decision_of(event.execution)
    try:
        if run is None:
            decision = engine.execute(
                entry_point=event.type,
                context=event.payload,
                dry_run=True,
                now=event.received_at,
            )
        else:
            applied = _backfill_apply(event, run)
            if applied is None:
                summary.skipped += 1
                return
            decision = applied
            summary.applied += 1
    except (NotFound, InvalidContext) as exc:
        summary.failed += 1
        message = exc.message if isinstance(exc, NotFound) else str(exc)
        if len(summary.changes) < max_changes:
            summary.changes.append(
                {"event": str(event.pk), "type": event.type, "status": "failed", "error": message}
            )
        return
    after = {
        "outcome": decision.outcome,
        "matched": sorted(str(r.get("name")) for r in decision.matched_rules),
    }
    if before is None:
        summary.new += 1
        status = "new"
    elif before == after:
        summary.unchanged += 1
        return
    else:
        summary.changed += 1
        status = "changed"
    if len(summary.changes) < max_changes:
        summary.changes.append(
            {
                "event": str(event.pk),
                "type": event.type,
                "status": status,
                "before": before,
                "after": after,
            }
        )


def _backfill_apply(event: Event, run: BackfillRun) -> engine.Decision | None:
    """Decide one event for real once per run; None when the run already did it."""
    with transaction.atomic():
        # Serialises two backfills of the same window racing on one event.
        Event.objects.select_for_update().filter(pk=event.pk).first()
        if BackfilledEvent.objects.filter(run=run, event_id=event.pk).exists():
            return None
        batch = engine.Batch()
        decision = engine.execute(
            entry_point=event.type,
            context=event.payload,
            caller="backfill",
            request_id=f"{run.key}:{event.pk}",
            event=engine.EventRef(str(event.pk), event.depth),
            batch=batch,
            now=event.received_at,
        )
        audit.insert_rows(batch.audit_rows)  # with the rule-set snapshot the rows refer to
        BackfilledEvent.objects.create(run=run, event=event, execution_id=decision.execution_id)
    return decision


# --- named lists from CSV --------------------------------------------------------------------


def _list_item(kind: str, cell: str) -> Any:
    """A CSV cell as a list item: numbers for a numbers list (the service checks the rest)."""
    if kind != "numbers":
        return cell
    try:
        number = float(cell)
    except ValueError:
        return cell
    return int(number) if number.is_integer() and "." not in cell and "e" not in cell else number


def named_list_import_csv(
    *,
    named_list: NamedList,
    file: IO[bytes] | IO[str] | bytes | str,
    mode: str = "append",
    has_header: bool = False,
    user: User = None,
    change_note: str = "",
) -> dict[str, Any]:
    """Replace or extend a named list's items from a one-column CSV, as one new version.

    Blank rows are skipped; items are checked for the list's kind by the named list service
    (duplicates dropped). Returns {"rows", "added", "removed", "unchanged", "items", "version"}.
    Raises InvalidInput (invalid_named_list) with the row number of every bad item, or of a
    row with more than one column; nothing is written then. Writes the list through
    `named_list_update` (version + 1, history, ruleset invalidation) unless nothing changes.
    """
    if mode not in ("append", "replace"):
        raise InvalidInput([{"path": "$.mode", "message": "append or replace"}], "invalid_csv")
    records = _csv_records(file)
    errors: list[ErrorDetail] = []
    cells: list[tuple[int, str]] = []
    for number, record in enumerate(records, start=1):
        if has_header and number == 1:
            continue
        values = [cell.strip() for cell in record]
        if not any(values):
            continue
        if any(values[1:]):
            errors.append({"path": f"row {number}", "message": "one column expected"})
            continue
        cells.append((number, values[0]))
    old = list(named_list.items or [])
    new = [_list_item(named_list.kind, cell) for _, cell in cells]
    items = new if mode == "replace" else [*old, *new]
    if errors:
        raise InvalidInput(errors, code="invalid_named_list")
    # Checked here first, so each bad item is reported with its row rather than its index.
    normalized, item_errors = normalize_items(
        named_list.kind, items, max_items=int(settings.VERDICT["NAMED_LIST_MAX_ITEMS"])
    )
    offset = 0 if mode == "replace" else len(old)
    for error in item_errors:
        match = re.fullmatch(r"\$\.items\[(\d+)\]", error["path"])
        index = int(match.group(1)) - offset if match else -1
        where = f"row {cells[index][0]}" if 0 <= index < len(cells) else error["path"]
        errors.append({"path": where, "message": error["message"]})
    if errors:
        raise InvalidInput(errors, code="invalid_named_list")
    before = set(map(repr, old))
    after = set(map(repr, normalized))
    summary = {
        "rows": len(cells),
        "added": len(after - before),
        "removed": len(before - after),
        "unchanged": len(after & before),
        "items": len(normalized),
        "version": named_list.version,
    }
    if normalized != old:
        updated = named_list_update(
            named_list=named_list,
            data={"items": normalized},
            user=user,
            change_note=change_note or f"CSV upload ({mode}, {len(cells)} rows)",
        )
        summary["version"] = updated.version
    return summary
