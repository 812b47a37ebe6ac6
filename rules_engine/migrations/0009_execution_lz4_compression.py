"""Audit rows' JSON columns compressed with lz4 instead of pglz (PostgreSQL 14+ built with lz4).

An audit row is 3-4 KB, over the TOAST threshold, so every insert compresses its largest JSON
values. pglz made a 20,000-row COPY of real audit rows take 3.8-4.4 s of the server's time,
lz4 2.6-3.3 s, for the same table size. Only new values are affected (no rewrite). Elsewhere
(SQLite, older or lz4-less servers) nothing changes.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, migrations, transaction

COLUMNS = ("matched_rules", "rule_results", "context_snapshot", "effects", "action_results")


def _set_compression(method: str) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        connection = schema_editor.connection
        if connection.vendor != "postgresql" or connection.pg_version < 140000:
            return
        table = apps.get_model("rules_engine", "Execution")._meta.db_table
        clauses = ", ".join(f"ALTER COLUMN {column} SET COMPRESSION {method}" for column in COLUMNS)
        try:
            # A server built without lz4 refuses the method: keep its default then.
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table} {clauses}")
        except DatabaseError:
            pass

    return run


class Migration(migrations.Migration):
    dependencies = [("rules_engine", "0008_subject_indexes")]

    operations = [
        migrations.RunPython(_set_compression("lz4"), _set_compression("pglz")),
    ]
