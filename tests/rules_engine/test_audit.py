"""Group commit of audit rows and the warm path's queries (real PostgreSQL, committed data)."""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from rules_engine import audit, engine, selectors, services
from rules_engine.cache import Snapshot
from rules_engine.functions import registry as functions
from rules_engine.models import Execution, RulesetSnapshot, SubjectState

pytestmark = pytest.mark.django_db(transaction=True)


def test_warm_decision_makes_no_query_on_the_request_connection(banner):
    # given a warm cache
    engine.execute(entry_point="banner", context={"name": "Ada"})
    # when the next decision is made
    with CaptureQueriesContext(connection) as queries:
        decision = engine.execute(entry_point="banner", context={"name": "Bob"})
    # then the request itself ran no SQL, and its audit row is committed all the same
    assert [q["sql"] for q in queries.captured_queries] == []
    row = Execution.objects.get(pk=str(decision.execution_id))
    assert (row.outcome, row.effects[0]["message"]["content"]) == ("matched", "Hi Bob")


def test_concurrent_decisions_all_have_their_audit_rows(banner):
    engine.execute(entry_point="banner", context={"name": "warm"})
    start = threading.Barrier(16)

    def decide(index: int) -> str:
        try:
            start.wait()
            return str(
                engine.execute(entry_point="banner", context={"name": f"n{index}"}).execution_id
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(decide, range(16)))
    assert Execution.objects.filter(pk__in=ids).count() == 16


def new_row(entry_point: Any, outcome: str, snapshot: Any = None) -> audit.AuditRow:
    """An audit row of `entry_point` with `outcome`, every other column at its default."""
    return audit.new_row(
        snapshot=snapshot, id=uuid.uuid4(), entry_point_id=entry_point.pk, outcome=outcome
    )


def run_writer(writer: audit.AuditWriter, items: list[Any]) -> None:
    """Start `writer`'s thread on rows queued beforehand, wait for them, close its connection."""
    for item in items:
        writer._queue.put(item)
    writer._pid = os.getpid()
    threading.Thread(target=writer._run, daemon=True).start()
    for item in items:
        assert item.wait(10)
    writer.close_connection()


def test_queued_rows_are_inserted_in_one_batch(banner):
    # given a writer with ten rows waiting before its thread runs
    writer = audit.AuditWriter()
    pending = [audit._Pending(new_row(banner, "no_match")) for _ in range(10)]
    # when the writer thread drains the queue
    run_writer(writer, pending)
    # then one INSERT committed all ten
    assert (writer.batches, writer.rows) == (1, 10)
    assert Execution.objects.count() == 10


def test_a_bad_row_fails_alone(banner):
    # given a batch where one row points at an entry point that does not exist
    writer = audit.AuditWriter()
    good = [audit._Pending(new_row(banner, "matched")) for _ in range(3)]
    bad = audit._Pending(audit.new_row(id=uuid.uuid4(), entry_point_id=999_999, outcome="matched"))
    run_writer(writer, [good[0], bad, *good[1:]])
    # then the others landed and only the bad one reports an error
    assert [item.error for item in good] == [None, None, None]
    assert bad.error is not None
    assert Execution.objects.count() == 3


def test_rows_whose_snapshot_is_committed_are_copied_without_a_transaction_block(banner):
    # given rows of a rule set whose snapshot is committed, and one of a new rule set
    snapshot = Snapshot("a" * 64, banner.pk, ())
    known = [new_row(banner, "matched", snapshot=snapshot) for _ in range(2)]
    audit.insert_rows([known[0]])  # commits the snapshot (autocommit), noted on commit
    audit.forget_snapshots()
    audit._remember_snapshots(frozenset({snapshot.digest}))
    fresh = new_row(banner, "matched", snapshot=Snapshot("b" * 64, banner.pk, ()))
    # when the writer tries the one-statement COPY for each
    with CaptureQueriesContext(connection) as queries:
        copied = audit._copy_on_its_own([known[1]])
        refused = audit._copy_on_its_own([fresh])
    with transaction.atomic():
        refused_in_block = audit._copy_on_its_own([known[1]])
    # then only the known snapshot's row was copied and committed, with no other statement
    # (the COPY runs on psycopg's cursor, which Django does not record)
    assert (copied, refused, refused_in_block) == (True, False, False)
    assert queries.captured_queries == []
    assert Execution.objects.filter(pk__in=[known[0].pk, known[1].pk]).count() == 2
    assert not Execution.objects.filter(pk=fresh.pk).exists()


def test_decision_that_writes_keeps_its_audit_row_in_its_transaction(demo, demo_context):
    # given audit inserts fail (a real trigger), outside any test transaction
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no'; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON rules_engine_execution "
            "FOR EACH ROW EXECUTE FUNCTION refuse();"
        )
    try:
        # when a decision with an update runs
        with pytest.raises(DatabaseError):
            engine.execute(entry_point="checkout", context=demo_context)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse ON rules_engine_execution; DROP FUNCTION refuse();")
    # then the update was rolled back with its audit row
    assert SubjectState.objects.count() == 0


def test_group_committed_audit_failure_is_an_error_not_a_silent_answer(banner):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no'; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON rules_engine_execution "
            "FOR EACH ROW EXECUTE FUNCTION refuse();"
        )
    try:
        with pytest.raises(audit.AuditWriteError):
            engine.execute(entry_point="banner", context={"name": "Ada"})
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse ON rules_engine_execution; DROP FUNCTION refuse();")


@pytest.fixture
def three_rules(banner: Any) -> Any:
    """The banner's greeting, a rule for VIPs only, and one whose function always raises."""

    def explode(*args: Any) -> Any:
        raise ValueError("boom")

    functions.register("explode", explode)
    yield [
        services.rule_create(
            data={"name": name, "entry_point": banner, "priority": priority, "condition": condition}
        )
        for name, priority, condition in (
            ("VIP", 200, {"==": [{"var": "tier"}, "vip"]}),
            ("Broken at run time", 300, {"explode": [1]}),
        )
    ]
    functions.unregister("explode")


def test_a_row_stores_only_notable_results_and_its_rule_set_snapshot(three_rules):
    # given a rule set of three rules, one of which will not match
    # when a decision is made (group-committed)
    decision = engine.execute(entry_point="banner", context={"name": "Ada"})
    # then the row lists the matched and the failed rule, and refers to the rule set
    row = Execution.objects.select_related("ruleset").get(pk=str(decision.execution_id))
    assert [(r["name"], r["outcome"]) for r in row.rule_results] == [
        ("Greet", "matched"),
        ("Broken at run time", "error"),
    ]
    assert row.ruleset is not None
    assert [r["name"] for r in row.ruleset.rules] == ["Greet", "VIP", "Broken at run time"]
    # and the full list read back is exactly the decision's
    assert selectors.execution_rule_results(execution=row) == decision.rule_results
    assert [r["outcome"] for r in decision.rule_results] == ["matched", "not_matched", "error"]


def test_decisions_share_one_snapshot_until_the_rules_change(three_rules):
    # given two decisions with the same rules
    first = engine.execute(entry_point="banner", context={"name": "Ada"})
    second = engine.execute(entry_point="banner", context={"name": "Bob", "tier": "vip"})
    # when a rule changes and a third decision is made
    services.rule_update(rule=three_rules[0], data={"priority": 50})
    third = engine.execute(entry_point="banner", context={"name": "Cy"})
    # then the first two share one snapshot and the third has its own, in the new order
    digests = [
        Execution.objects.get(pk=str(d.execution_id)).ruleset_id for d in (first, second, third)
    ]
    assert digests[0] == digests[1] != digests[2]
    assert RulesetSnapshot.objects.count() == 2
    newest = RulesetSnapshot.objects.get(pk=digests[2])
    assert [(r["name"], r["version"]) for r in newest.rules] == [
        ("VIP", 2),
        ("Greet", 1),
        ("Broken at run time", 1),
    ]


def test_a_decision_that_writes_stores_its_snapshot_in_its_transaction(demo, demo_context):
    # given the demo (its loyalty rule updates state, so the row is inserted with the update)
    decision = engine.execute(entry_point="checkout", context=demo_context)
    # then the row and its snapshot are both there, and the full list reads back
    row = Execution.objects.get(pk=str(decision.execution_id))
    assert row.ruleset_id is not None
    assert RulesetSnapshot.objects.filter(pk=row.ruleset_id).exists()
    assert selectors.execution_rule_results(execution=row) == decision.rule_results


def test_the_executions_api_serves_every_rule_result(three_rules, api_client):
    decision = engine.execute(entry_point="banner", context={"name": "Ada"})
    staff_body = api_client.get(f"/api/executions/{decision.execution_id}/")
    assert staff_body.status_code == 200, staff_body.content
    assert staff_body.json()["rule_results"] == decision.rule_results


def test_a_snapshot_rolled_back_with_its_callers_transaction_is_written_again(three_rules):
    # given a decision made inside a caller's transaction that then rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        engine.execute(entry_point="banner", context={"name": "Ada"})
        raise RuntimeError("the caller fails")
    assert RulesetSnapshot.objects.count() == 0
    # when the same rule set decides again, group-committed
    decision = engine.execute(entry_point="banner", context={"name": "Bob"})
    # then its row and its snapshot are both committed
    row = Execution.objects.select_related("ruleset").get(pk=str(decision.execution_id))
    assert row.ruleset is not None
    assert selectors.execution_rule_results(execution=row) == decision.rule_results


def test_audit_json_columns_are_compressed_with_lz4():
    # given the migrated test database (PostgreSQL 15, built with lz4)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = "
            "'rules_engine_execution'::regclass AND attcompression <> '' ORDER BY attname"
        )
        rows = cursor.fetchall()
    # then the JSON columns use lz4 ('l'), cheaper than pglz when each row is inserted
    assert rows == [
        ("action_results", "l"),
        ("context_snapshot", "l"),
        ("effects", "l"),
        ("matched_rules", "l"),
        ("rule_results", "l"),
    ]


def test_the_audit_table_has_only_the_indexes_its_reads_need():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'rules_engine_execution' "
            "ORDER BY indexname"
        )
        definitions = [row[0].split(" USING ")[1] for row in cursor.fetchall()]
    # every index costs each audit insert: entry point then time, time alone, the key
    assert definitions == [
        "btree (entry_point_id, created_at DESC)",
        "btree (created_at)",
        "btree (id)",
    ]


AWKWARD = 'back\\slash\ttab\nnewline\rreturn \\N \\\\ "quoted" ünï ‮ 🙂 <b>&amp;</b>'


def test_copy_writes_every_value_as_the_orm_reads_it_back(banner):
    # given a row whose text and JSON hold every character COPY's text format escapes
    document = {
        AWKWARD: [AWKWARD, 1.5, -2, True, None, {"nested\\key": "\t\n\r\x01\x1f"}],
        "float": 1e-7,
        "big": 10**18,
    }
    row = audit.new_row(
        id=uuid.uuid4(),
        entry_point_id=banner.pk,
        outcome="matched",
        matched_rules=[document],
        rule_results=[{"outcome": "matched", "error": AWKWARD}],
        context_snapshot=document,
        effects=[{"message": {"content": AWKWARD}}],
        action_results=[],
        blocking=True,
        duration_ms=0.125,
        caller=AWKWARD,
        request_id="req\\1\t",
        subject="",
    )
    # when it is copied
    audit.insert_rows([row])
    # then the ORM reads back exactly what was written
    stored = Execution.objects.get(pk=row.pk)
    assert (
        stored.matched_rules,
        stored.rule_results,
        stored.context_snapshot,
        stored.effects,
        stored.action_results,
        stored.blocking,
        stored.duration_ms,
        stored.caller,
        stored.request_id,
        stored.subject,
        stored.ruleset_id,
        stored.created_at,
    ) == (
        [document],
        [{"outcome": "matched", "error": AWKWARD}],
        document,
        [{"message": {"content": AWKWARD}}],
        [],
        True,
        0.125,
        AWKWARD,
        "req\\1\t",
        "",
        None,
        row.values[audit._CREATED_AT_INDEX],
    )


def test_a_row_saved_alone_is_the_row_copy_writes(banner):
    # given the same row twice, one copied and one saved alone (the writer's fallback)
    columns = {
        "entry_point_id": banner.pk,
        "outcome": "error",
        "context_snapshot": {"k": AWKWARD},
        "caller": AWKWARD,
        "duration_ms": 3.0,
    }
    copied = audit.new_row(id=uuid.uuid4(), **columns)
    alone = audit.new_row(id=uuid.uuid4(), **columns)
    # when one is copied and the other saved through the model
    audit.insert_rows([copied])
    alone.model().save(force_insert=True)
    # then both rows read back the same, but for their ids and times
    fields = ["outcome", "context_snapshot", "caller", "duration_ms", "matched_rules", "blocking"]
    first, second = (
        Execution.objects.filter(pk=pk).values(*fields).get() for pk in (copied.pk, alone.pk)
    )
    assert first == second
    assert first["context_snapshot"] == {"k": AWKWARD}


def test_new_row_refuses_a_name_that_is_no_field() -> None:
    with pytest.raises(TypeError, match=r"not Execution fields: \['entry_point'\]"):
        audit.new_row(entry_point=1)
