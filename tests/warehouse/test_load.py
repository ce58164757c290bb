"""Every output packet of the fixture run, in order, into PostgreSQL with the full DDL
and its foreign keys; loading is once only, in order, and a missing packet stops it."""

from __future__ import annotations

import io

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from runtime.star import ARROW_SCHEMAS
from runtime.tables import OUTPUT_TABLES
from sandbox.local_store import LocalDirectory
from sandbox.warehouse import (
    LoadError,
    PacketConflictError,
    PacketGapError,
    load,
    load_packet,
    output_packets,
    warehouse_tables,
)
from tests.warehouse import parquet_rows


def table_rows(conn, table: str, columns) -> list[dict]:
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
    )
    return [dict(zip(columns, r)) for r in conn.execute(query)]


def loaded_numbers(conn, table: str) -> list[int]:
    return [n for (n,) in conn.execute(
        "SELECT packet FROM loader.loaded_packet WHERE table_name = %s ORDER BY packet", (table,)
    )]


def count(conn, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


def test_every_output_packet_loads_in_order_with_every_foreign_key(warehouse, fixture_run):
    # Straight from the bucket, through the S3 adapter of the ProcessedStore port.
    report = load(warehouse, fixture_run.s3, fixture_run.produced_or_zero)
    tables = warehouse_tables(warehouse)

    # Every committed packet of every table, n = 1..produced, each once, in order,
    # all the dimensions' before any fact's.
    for table in OUTPUT_TABLES:
        assert [p.n for p in report.loaded if p.table == table] == list(range(1, fixture_run.produced[table] + 1))
        assert loaded_numbers(warehouse, table) == list(range(1, fixture_run.produced[table] + 1))
    assert fixture_run.produced["fact_sales_order"] == 4 and report.waiting == {}
    order = [p.table for p in report.loaded]
    last_dimension = max(i for i, t in enumerate(order) if tables[t].upserted)
    assert all(i > last_dimension for i, t in enumerate(order) if not tables[t].upserted)

    # What the warehouse holds is what the bucket holds: facts appended, every row of
    # every packet; dimensions upserted by key, the later packet winning.
    for table in OUTPUT_TABLES:
        columns = list(ARROW_SCHEMAS[table].names)
        loaded = table_rows(warehouse, table, columns)
        if tables[table].upserted:
            [key] = tables[table].primary_key
            expected = list(parquet_rows.dimension(fixture_run.store, table, key).values())
        else:
            expected = parquet_rows.rows(fixture_run.store, table)
        assert len(loaded) == len(expected), table
        assert parquet_rows.multiset(loaded, columns) == parquet_rows.multiset(expected, columns), table
    assert count(warehouse, "fact_sales_order") == 11175
    # dim_date came in one packet per fact packet, overlapping: one row per date here.
    assert count(warehouse, "dim_date") < sum(p.rows for p in report.loaded if p.table == "dim_date")


def test_the_foreign_keys_are_enforced(warehouse, fixture_run):
    """A fact packet before its dimensions is refused whole: nothing of it stays."""
    tables = warehouse_tables(warehouse)
    key = output_packets(fixture_run.store, ["fact_sales_order"])["fact_sales_order"][1]
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        load_packet(warehouse, tables["fact_sales_order"], 1, key, fixture_run.store.read(key))
    assert count(warehouse, "fact_sales_order") == 0
    assert loaded_numbers(warehouse, "fact_sales_order") == []


def test_a_packet_is_never_loaded_twice(warehouse, fixture_run):
    load(warehouse, fixture_run.store, fixture_run.produced_or_zero)
    before = {t: count(warehouse, t) for t in OUTPUT_TABLES}
    again = load(warehouse, fixture_run.store, fixture_run.produced_or_zero)
    assert again.loaded == []
    tables = warehouse_tables(warehouse)
    key = output_packets(fixture_run.store, ["fact_sales_order"])["fact_sales_order"][2]
    body = fixture_run.store.read(key)
    assert load_packet(warehouse, tables["fact_sales_order"], 2, key, body) is False
    assert {t: count(warehouse, t) for t in OUTPUT_TABLES} == before
    # The same packet number from other bytes, or under another key, is refused.
    other = io.BytesIO()
    pq.write_table(pq.read_table(io.BytesIO(body)).slice(0, 1), other)
    with pytest.raises(PacketConflictError, match="fact_sales_order packet 2 was loaded from"):
        load_packet(warehouse, tables["fact_sales_order"], 2, key, other.getvalue())
    with pytest.raises(PacketConflictError):
        load_packet(warehouse, tables["fact_sales_order"], 2, key.replace("_processed_", "_processed_1"), body)
    assert {t: count(warehouse, t) for t in OUTPUT_TABLES} == before


def test_a_missing_packet_stops_the_load_there_and_it_resumes_once_present(warehouse, fixture_run, tmp_path):
    store = fixture_run.local_copy(tmp_path / "bucket")
    packet_2 = output_packets(store, ["fact_sales_order"])["fact_sales_order"][2]
    moved = (tmp_path / "bucket" / packet_2).read_bytes()
    (tmp_path / "bucket" / packet_2).unlink()

    with pytest.raises(PacketGapError, match="fact_sales_order packet 2 is missing from the bucket, but 4 are committed"):
        load(warehouse, store, fixture_run.produced_or_zero)
    assert loaded_numbers(warehouse, "fact_sales_order") == [1]  # committed before the gap
    assert loaded_numbers(warehouse, "dim_date") == list(range(1, fixture_run.produced["dim_date"] + 1))

    # Without the produced ids, a later packet present is the evidence of the gap.
    with pytest.raises(PacketGapError, match="packet 4 is there"):
        load(warehouse, store)

    (tmp_path / "bucket" / packet_2).write_bytes(moved)
    report = load(warehouse, store, fixture_run.produced_or_zero)
    assert [(p.table, p.n) for p in report.loaded] == [("fact_sales_order", n) for n in (2, 3, 4)]
    assert count(warehouse, "fact_sales_order") == 11175


def test_only_committed_packets_load_and_never_out_of_order(warehouse, fixture_run):
    # produced/fact_sales_order = 2: packets 3 and 4 are written but not committed yet.
    def produced(table):
        return 2 if table == "fact_sales_order" else fixture_run.produced_or_zero(table)

    report = load(warehouse, fixture_run.store, produced)
    assert report.waiting == {"fact_sales_order": [3, 4]}
    assert loaded_numbers(warehouse, "fact_sales_order") == [1, 2]
    tables = warehouse_tables(warehouse)
    key = output_packets(fixture_run.store, ["fact_sales_order"])["fact_sales_order"][4]
    with pytest.raises(PacketGapError, match="packet 3 is not loaded yet"):
        load_packet(warehouse, tables["fact_sales_order"], 4, key, fixture_run.store.read(key))


def test_the_processors_own_prefixes_are_not_read_and_strays_are_refused(warehouse, fixture_run, tmp_path):
    store = fixture_run.local_copy(tmp_path / "bucket")
    assert store.list_keys("_state/") and store.list_keys("_commits/")  # there, and ignored
    load(warehouse, store, fixture_run.produced_or_zero)
    (tmp_path / "bucket" / "dim_staff" / "notes.txt").write_text("not a packet")
    with pytest.raises(LoadError, match="'dim_staff/notes.txt' is not an output file of dim_staff"):
        load(warehouse, store, fixture_run.produced_or_zero)


def test_a_later_dimension_packet_replaces_rows_by_key(warehouse, tmp_path):
    store = LocalDirectory(tmp_path)
    schema = ARROW_SCHEMAS["dim_currency"]
    for n, rows in enumerate([
        [(1, "GBP", "Pound"), (2, "USD", "US Dollar")],
        [(1, "GBP", "Pound Sterling")],
    ], start=1):
        table = pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)
        body = io.BytesIO()
        pq.write_table(table, body)
        store.put_if_absent(f"dim_currency/dim_currency_packet_{n}_processed_20221103T142049.962000Z.parquet",
                            body.getvalue(), {})
    report = load(warehouse, store)
    assert [(p.table, p.n, p.rows) for p in report.loaded] == [("dim_currency", 1, 2), ("dim_currency", 2, 1)]
    assert warehouse.execute("SELECT * FROM dim_currency ORDER BY currency_id").fetchall() == [
        (1, "GBP", "Pound Sterling"), (2, "USD", "US Dollar"),
    ]


def test_load_needs_an_autocommit_connection(postgres, tmp_path):
    with psycopg.connect(postgres) as conn, pytest.raises(ValueError, match="autocommit"):
        load(conn, LocalDirectory(tmp_path))


def test_the_produced_ids_are_read_facts_first(warehouse, fixture_run):
    """Read the other way round, a fact file committed between the reads could be
    loaded before the dimension rows it refers to."""
    asked = []

    def produced(table):
        asked.append(table)
        return fixture_run.produced_or_zero(table)

    load(warehouse, fixture_run.store, produced)
    tables = warehouse_tables(warehouse)
    assert sorted(asked) == sorted(tables)
    facts = [i for i, t in enumerate(asked) if not tables[t].upserted]
    assert max(facts) < min(i for i, t in enumerate(asked) if tables[t].upserted)


def test_a_file_whose_types_differ_from_the_ddl_is_refused(warehouse, tmp_path):
    """COPY would round a third decimal place away; the loader refuses the file."""
    schema = ARROW_SCHEMAS["dim_currency"]
    wrong = pa.schema([pa.field("currency_id", pa.int64(), nullable=False), *list(schema)[1:]])
    body = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"currency_id": 1, "currency_code": "GBP", "currency_name": "Pound"}],
                                        schema=wrong), body)
    store = LocalDirectory(tmp_path)
    store.put_if_absent("dim_currency/dim_currency_packet_1_processed_20221103T142049.962000Z.parquet", body.getvalue(), {})
    with pytest.raises(LoadError, match="currency_id is int64, the warehouse's is int32"):
        load(warehouse, store)
    assert count(warehouse, "dim_currency") == 0 and loaded_numbers(warehouse, "dim_currency") == []
