"""Audit rows: no index on entry point alone (exec_ep_created, entry point then time, serves
those lookups, and every index costs each audit insert).

Only the index is dropped: Django's own AlterField would also drop and re-add the foreign key,
which re-checks every audit row while holding a lock on the table.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "rules_engine_execution_entry_point_id_61221c46"


class Migration(migrations.Migration):
    dependencies = [
        ("rules_engine", "0009_execution_lz4_compression"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="execution",
                    name="entry_point",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="executions",
                        to="rules_engine.entrypoint",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {INDEX}",
                    f"CREATE INDEX IF NOT EXISTS {INDEX} "
                    "ON rules_engine_execution (entry_point_id)",
                ),
            ],
        ),
    ]
