"""Cheaper indexes on ``container_registry_events``, the one table every counted
registry event writes (``docs/bench-events.md``).

* ``received_at``: BRIN on PostgreSQL. Rows arrive in time order, so a block-range index
  finds old rows (for pruning) as well as a B-tree does, at almost no cost per insert.
  Other databases keep a B-tree.
* ``event_id``: PostgreSQL gets a second, ``varchar_pattern_ops`` index from Django for
  every unique ``CharField``, for ``LIKE`` queries. Event ids are only ever compared
  whole (the unique index serves that), so it is dropped.

The model state is unchanged by the SQL below: the ORM never chooses indexes.
"""

import django.utils.timezone
from django.db import migrations, models

TABLE = "container_registry_events"
RECEIVED_AT_INDEX = "container_registry_events_received_at"


def tune_indexes(apps, schema_editor):
    connection = schema_editor.connection
    quote = schema_editor.quote_name
    if connection.vendor != "postgresql":
        schema_editor.execute(f"CREATE INDEX {quote(RECEIVED_AT_INDEX)} ON {quote(TABLE)} (received_at)")
        return
    schema_editor.execute(f"CREATE INDEX {quote(RECEIVED_AT_INDEX)} ON {quote(TABLE)} USING brin (received_at)")
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    for name, details in constraints.items():
        if details["index"] and details["columns"] == ["event_id"] and name.endswith("_like"):
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


def restore_indexes(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(RECEIVED_AT_INDEX)}")


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
        migrations.RunPython(tune_indexes, restore_indexes),
    ]
