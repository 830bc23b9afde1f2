"""gitlab_core.db: statements on a request path have a fixed text, and on PostgreSQL
psycopg prepares each once per connection."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from container_registry.models import RegistryEvent
from gitlab_core.db import any_of, as_list_param, fetch_all, fetch_side_by_side, write_together
from projects.models import Namespace
from tests_support.factories import make_group

EVENTS = RegistryEvent._meta.db_table
INSERT = f"INSERT INTO {EVENTS} (event_id, action, repository, received_at) VALUES (%s, 'push', 'a/b', %s) RETURNING id"


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")


def prepared_statements() -> dict[str, int]:
    """This connection's prepared statements: text -> times run (generic + custom plans)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_a_statement_is_prepared_once_per_connection_and_reused(postgresql):
    sql = "SELECT %s::bigint + 1, %s::timestamptz"
    stamp = dt.datetime(2026, 11, 27, 12, 30, tzinfo=dt.UTC)
    for n in range(7):
        assert fetch_all(sql, [n, stamp]) == [(n + 1, stamp)]
    runs = [count for text, count in prepared_statements().items() if "::bigint + 1" in text]
    assert runs == [7]


@pytest.mark.django_db(transaction=True)
def test_after_a_reconnection_and_in_another_thread_statements_run_on_their_own_connection(postgresql):
    # The cursor fetch_all keeps belongs to one thread's connection: a new connection
    # (CONN_MAX_AGE, a database restart) and another thread must not reuse it.
    sql = "SELECT %s::bigint * 3, pg_backend_pid()"
    ((first, first_pid),) = fetch_all(sql, [1])
    connection.close()
    ((second, second_pid),) = fetch_all(sql, [2])
    assert (first, second) == (3, 6)
    assert second_pid != first_pid
    assert [count for text, count in prepared_statements().items() if "* 3" in text] == [1]

    seen = {}

    def elsewhere():
        try:
            seen["row"] = fetch_all(sql, [5])[0]
        finally:
            connection.close()

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert seen["row"][0] == 15
    assert seen["row"][1] != second_pid
    assert fetch_all(sql, [7]) == [(21, second_pid)]


@pytest.mark.django_db(transaction=True)
def test_after_a_failed_statement_the_next_one_runs(postgresql):
    with pytest.raises(DataError):
        fetch_all("SELECT %s::int", ["not a number"])
    assert fetch_all("SELECT %s::int + 1", [41]) == [(42,)]


@pytest.mark.django_db(transaction=True)
def test_with_prepared_statements_off_nothing_is_prepared(postgresql, settings):
    # What HOT_QUERIES_PREPARED=false sets, for a transaction-mode pooler.
    connection.close()
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("prepare_threshold")
    options["prepare_threshold"] = None
    try:
        assert fetch_all("SELECT %s::int * 2", [21]) == [(42,)]
        assert prepared_statements() == {}
    finally:
        options["prepare_threshold"] = saved
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_list_parameter_keeps_one_statement_whatever_its_length():
    make_group("alpha")
    make_group("beta")
    vendor = connection.vendor
    sql = f"SELECT full_path FROM {Namespace._meta.db_table} WHERE {any_of('full_path_lower', vendor)} ORDER BY 1"
    for size in (1, 2, 50, 500):
        names = ["alpha", "beta"][:size] + [f"missing-{n}" for n in range(size - 2)]
        expected = [("alpha",), ("beta",)][:size]
        assert fetch_all(sql, [as_list_param(names, vendor)]) == expected
    if vendor == "postgresql":
        assert len([text for text in prepared_statements() if "full_path_lower" in text]) == 1


@pytest.mark.django_db
def test_the_any_lookup_filters_like_in_with_one_fixed_text():
    groups = [make_group(f"g{n}") for n in range(5)]
    wanted = {groups[1].pk, groups[3].pk}
    assert set(Namespace.objects.filter(pk__any=wanted).values_list("pk", flat=True)) == wanted
    assert not Namespace.objects.filter(pk__any=[]).exists()
    texts = {
        Namespace.objects.filter(full_path_lower__any=names).query.sql_with_params()[0]
        for names in (["g1"], ["g1", "g2", "g3"])
    }
    assert len(texts) == 1


@pytest.mark.django_db(transaction=True)
def test_a_constraint_violation_is_djangos_integrity_error_and_the_connection_goes_on():
    stamp = connection.ops.adapt_datetimefield_value(dt.datetime.now(dt.UTC))
    fetch_all(INSERT, ["same-id", stamp])
    with pytest.raises(IntegrityError):
        fetch_all(INSERT, ["same-id", stamp])
    fetch_all(INSERT, ["other-id", stamp])
    assert sorted(RegistryEvent.objects.values_list("event_id", flat=True)) == ["other-id", "same-id"]


@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_the_statement_belongs_to_it():
    stamp = connection.ops.adapt_datetimefield_value(dt.datetime.now(dt.UTC))
    fetch_all(INSERT, ["before", stamp])
    with pytest.raises(RuntimeError), transaction.atomic():
        fetch_all(INSERT, ["rolled-back", stamp])
        assert RegistryEvent.objects.filter(event_id="rolled-back").exists()
        raise RuntimeError("roll back")
    fetch_all(INSERT, ["after", stamp])
    assert sorted(RegistryEvent.objects.values_list("event_id", flat=True)) == ["after", "before"]


@pytest.mark.django_db(transaction=True)
def test_a_statement_whose_result_type_a_migration_changed_runs_again(postgresql):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE db_probe (n integer)")
        cursor.execute("INSERT INTO db_probe VALUES (7)")
    try:
        sql = "SELECT n FROM db_probe WHERE n IS NOT NULL AND %s::int > 0"
        assert fetch_all(sql, [1]) == [(7,)]
        assert fetch_all(sql, [1]) == [(7,)]
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE db_probe ALTER COLUMN n TYPE bigint")
        assert fetch_all(sql, [1]) == [(7,)]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE db_probe")


# The events written together: the ids given as a JSON array, one row each.
IDS = "ids AS (SELECT value AS event_id FROM json_each(%s))"
IDS_PG = "ids AS (SELECT value AS event_id FROM json_array_elements_text(CAST(%s AS json)))"
RECORD = (
    f"INSERT INTO {EVENTS} (event_id, action, repository, received_at) "
    "SELECT event_id || %s, 'push', 'a/b', %s FROM ids"
)
RETURNING = RECORD + " RETURNING event_id"


def ids(*values: str) -> tuple[str, list]:
    return (IDS_PG if connection.vendor == "postgresql" else IDS), [json.dumps(values)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_atomic", [False, True], ids=["autocommit", "in-a-transaction"])
def test_statements_written_together_share_their_rows_return_the_firsts_and_fail_as_one_transaction(in_atomic):
    stamp = connection.ops.adapt_datetimefield_value(dt.datetime.now(dt.UTC))
    outer = transaction.atomic() if in_atomic else contextlib.nullcontext()
    with outer:
        rows = write_together(ids("a", "b"), [(RETURNING, ["-1", stamp]), (RECORD, ["-2", stamp])])
        assert sorted(rows) == [("a-1",), ("b-1",)]
        with pytest.raises(IntegrityError):
            # The second statement's "c-1" would be new, its "a-1" is not.
            write_together(ids("c", "a"), [(RETURNING, ["-3", stamp]), (RECORD, ["-1", stamp])])
        # The failure undid its own statements only: the connection goes on.
        write_together(ids("d"), [(RETURNING, ["-1", stamp])])
    recorded = sorted(RegistryEvent.objects.values_list("event_id", flat=True))
    assert recorded == ["a-1", "a-2", "b-1", "b-2", "d-1"]


@pytest.mark.django_db(transaction=True)
def test_a_later_parameter_that_cannot_be_sent_applies_none_of_the_statements(postgresql):
    # PostgreSQL refuses text with NUL (DataError) and psycopg cannot encode a lone
    # surrogate (UnicodeEncodeError); SQLite stores a NUL.
    stamp = connection.ops.adapt_datetimefield_value(dt.datetime.now(dt.UTC))
    for bad in ("nul\x00byte", "lone \ud800 surrogate"):
        with pytest.raises((DataError, UnicodeEncodeError)):
            write_together(ids("x"), [(RETURNING, ["-applied-first", stamp]), (RECORD, [bad, stamp])])
        assert not RegistryEvent.objects.exists()
    write_together(ids("x"), [(RETURNING, ["-then-fine", stamp]), (RECORD, ["-also-fine", stamp])])
    assert RegistryEvent.objects.count() == 2


@pytest.mark.django_db
def test_lookups_side_by_side_give_each_its_own_rows_in_one_statement():
    owner_group = make_group("side")
    make_group("by", parent=owner_group)
    table = Namespace._meta.db_table
    groups = (
        f"SELECT n.id, n.full_path_lower FROM {table} n WHERE n.full_path_lower LIKE %s ORDER BY n.id",
        ["side%"],
        2,
    )
    nothing = (f"SELECT n.id, n.name FROM {table} n WHERE n.full_path_lower = %s", ["missing"], 2)
    one = ("SELECT %s, %s", [7, "seven"], 2)
    with CaptureQueriesContext(connection) as queries:
        found_groups, found_nothing, found_one = fetch_side_by_side([groups, nothing, one])
    assert len(queries.captured_queries) == 1
    assert sorted(row[1] for row in found_groups) == ["side", "side/by"]
    assert found_nothing == []
    assert [tuple(row) for row in found_one] == [(7, "seven")]
    # Nothing anywhere: every statement reads no rows.
    assert fetch_side_by_side([nothing, nothing]) == [[], []]
