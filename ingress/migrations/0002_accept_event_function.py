"""A PostgreSQL function that accepts an event in one round trip (see services._insert)."""

from typing import Any

from django.db import migrations

# The advisory lock key must be the one services._lock_source_key takes for a cancellation:
# hashtext('<len(source)>:<source>:<key>').
CREATE = """
CREATE OR REPLACE FUNCTION ingress_accept_event(
    p_id uuid, p_type varchar, p_source varchar, p_key varchar, p_subject varchar,
    p_payload jsonb, p_depth integer, p_parent_id uuid, p_now timestamptz
) RETURNS TABLE (accepted_status varchar, accepted_reason varchar)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Serialises with a cancellation of the same (source, key) until the transaction ends;
    -- the statement below takes its snapshot after the lock, so it sees a cancellation that
    -- committed while this waited.
    PERFORM pg_advisory_xact_lock(
        hashtext(length(p_source)::text || ':' || p_source || ':' || p_key)
    );
    RETURN QUERY
    WITH early AS (
        DELETE FROM ingress_pendingcancellation AS c
        WHERE c.source = p_source AND c.key = p_key
        RETURNING c.reason
    )
    INSERT INTO ingress_event AS e (
        id, type, source, key, subject, payload, status, depth, parent_id, execution_id, error,
        cancel_reason, attempts, received_at, updated_at, processed_at, finished_at
    )
    SELECT p_id, p_type, p_source, p_key, p_subject, p_payload,
           CASE WHEN early.reason IS NULL THEN 'received' ELSE 'cancelled' END,
           p_depth, p_parent_id, NULL, '', COALESCE(early.reason, ''), 0, p_now, p_now,
           NULL, CASE WHEN early.reason IS NULL THEN NULL ELSE p_now END
    FROM (SELECT 1) AS one LEFT JOIN early ON true
    ON CONFLICT (source, key) DO NOTHING
    RETURNING e.status, e.cancel_reason;
END
$$
"""

DROP = "DROP FUNCTION IF EXISTS ingress_accept_event(uuid, varchar, varchar, varchar, varchar, jsonb, integer, uuid, timestamptz)"


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("ingress", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
