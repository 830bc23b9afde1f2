"""Cheaper indexes on ``container_registry_events``, the one table every counted
registry event writes (measurements in ``docs/performance.md``).

* ``received_at``: BRIN on PostgreSQL. Rows arrive in time order, so a block-range index
  finds old rows (for pruning) as well as a B-tree does, at almost no cost per insert.
  Other databases keep a B-tree.
* ``event_id``: PostgreSQL gets a second, ``varchar_pattern_ops`` index from Django for
  every unique ``CharField``, for ``LIKE`` queries. Event ids are only ever compared
  whole (the unique index serves that), so it is dropped.

The ``received_at`` index is in the model state as a plain index (so that SQLite keeps
it when a later migration rebuilds the table); on PostgreSQL the database has the BRIN
kind under the same name. Reversing restores the B-tree but not the ``LIKE`` index.
Building the BRIN index takes a lock on the table for a few seconds per million rows.
"""

import django.utils.timezone
from django.db import migrations, models

TABLE = "container_registry_events"
RECEIVED_AT_INDEX = "cr_events_received_at"


def create_received_at_index(apps, schema_editor):
    quote = schema_editor.quote_name
    method = " USING brin" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"CREATE INDEX {quote(RECEIVED_AT_INDEX)} ON {quote(TABLE)}{method} (received_at)")


def drop_received_at_index(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(RECEIVED_AT_INDEX)}")


def drop_like_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    for name, details in constraints.items():
        if details["index"] and details["columns"] == ["event_id"] and name.endswith("_like"):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [
        ("container_registry", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="registryevent",
            name="received_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="registryevent",
                    index=models.Index(fields=["received_at"], name=RECEIVED_AT_INDEX),
                ),
            ],
            database_operations=[migrations.RunPython(create_received_at_index, drop_received_at_index)],
        ),
        migrations.RunPython(drop_like_index, migrations.RunPython.noop),
    ]
