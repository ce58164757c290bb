"""Under the warehouse's own names, a direct query gives the warehouse's answer
(docs/design.md#catalog).

Athena cannot run here: DuckDB stands in (sandbox/lake.py). The views' SQL, the very
text the stack stores in the Glue Data Catalog (cdk_app/athena_views.py), is transpiled
from Trino's dialect with sqlglot and runs over the Parquet the pipeline wrote, read as
Athena reads it (`*_time` as bigint microseconds, `"$path"` as DuckDB's `filename`).
Two states of the lake, each against the loaded PostgreSQL warehouse of the same files:

- the fixture run (`make run`'s packets, processed by the real handler over moto);
- the fixture run and then later packets: staff packets 2 to 10 each renaming one
  member of staff (so dim_staff's packet 10 must beat packet 9: numbers, not text), a
  department and an address change that re-emit dim_staff, dim_location and
  dim_counterparty rows, and sales orders whose times carry microseconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from pathlib import Path

import boto3
import psycopg
import pytest
import sqlglot
from psycopg import sql

from cdk_app.athena_views import lake_tables
from runtime import handler
from runtime.tables import CALENDAR_TABLE, FACTS, OUTPUTS, consumed_parameter, produced_parameter
from sandbox import query
from sandbox import run as make_run
from sandbox.analysts import QUESTIONS, QUESTIONS_DIR, answer
from sandbox.emulator import moto_server
from sandbox.lake import connect, trino_to_duckdb
from sandbox.local_store import LocalDirectory
from sandbox.seed import LocalStack, create_resources, fixture_lines, upload_packet
from sandbox.warehouse import load

TABLES = lake_tables()
ATHENA_QUESTIONS = QUESTIONS_DIR / "athena"

RENAMED_STAFF = 1
RENAMES = range(2, 11)  # staff packets 2..10: dim_staff packets 2..10
CHANGED_DEPARTMENT = 6  # not staff 1's (2): its staff are re-emitted in dim_staff packet 11
CHANGED_ADDRESS = 15  # counterparty 1's legal address
# sales_order packet 5: a new version of order 2, and two new orders; times with microseconds.
MICROSECOND_ORDERS = {
    2: ("2022-11-03T14:20:52.186000", "2025-01-07T00:00:00.000001"),
    99001: ("2025-01-06T23:59:59.999999", "2025-01-06T23:59:59.999999"),
    99002: ("2025-01-07T08:09:10.000007", "2025-01-07T08:09:10.000007"),
}


def _line(row: dict) -> bytes:
    return (json.dumps(row) + "\n").encode()


def _fixture_row(table: str, key: str, value: int) -> dict:
    return next(r for r in map(json.loads, fixture_lines(table)) if r[key] == value)


def _later_packets() -> list[tuple[str, int, list[bytes]]]:
    staff = _fixture_row("staff", "staff_id", RENAMED_STAFF)
    packets = [
        ("staff", k, [_line({**staff, "last_name": f"Renamed{k}",
                             "last_updated": f"2025-01-06T09:00:{k:02d}.{k:06d}"})])
        for k in RENAMES
    ]
    department = _fixture_row("department", "department_id", CHANGED_DEPARTMENT)
    department.update(location="Leeds", last_updated="2025-01-06T11:22:33.444555")
    packets.append(("department", 2, [_line(department)]))
    address = _fixture_row("address", "address_id", CHANGED_ADDRESS)
    address.update(city="Elsewhere", last_updated="2025-01-06T12:00:00.000123")
    packets.append(("address", 2, [_line(address)]))
    order = _fixture_row("sales_order", "sales_order_id", 2)
    packets.append(("sales_order", 5, [
        _line({**order, "sales_order_id": i, "created_at": created, "last_updated": updated, "units_sold": 7})
        for i, (created, updated) in MICROSECOND_ORDERS.items()
    ]))  # fmt: skip
    return packets


@pytest.fixture(scope="module")
def later_lake(fixture_run, tmp_path_factory) -> Path:
    """The fixture run's bucket and packet ids on a moto server of its own, then the
    later packets through lambda_handler; a local copy of the bucket after."""
    names = LocalStack()
    already = {table: len(parts) for table, parts in make_run._packets(4, False).items()}
    with moto_server() as server, pytest.MonkeyPatch.context() as env:
        for key, value in {**server.env(), **names.env(), "LOG_LEVEL": "WARNING"}.items():
            env.setenv(key, value)
        handler.reset()
        s3, ssm = boto3.client("s3"), boto3.client("ssm")
        create_resources(s3, ssm, names)
        seed = [p for p in fixture_run.copy.rglob("*") if p.is_file()]
        with ThreadPoolExecutor(8) as pool:  # moto's server answers puts one at a time, slowly
            list(pool.map(lambda p: s3.put_object(Bucket=names.processed_bucket, Body=p.read_bytes(),
                                                  Key=p.relative_to(fixture_run.copy).as_posix()), seed))  # fmt: skip
        for table, n in fixture_run.produced.items():
            ssm.put_parameter(Name=produced_parameter(names.ssm_prefix, table), Value=str(n), Overwrite=True)
        for table, n in already.items():
            ssm.put_parameter(Name=consumed_parameter(names.ssm_prefix, table), Value=str(n), Overwrite=True)
        packets = _later_packets()
        for table, k, lines in packets:
            upload_packet(s3, names.ingestion_bucket, table, k, lines)
        events = [
            {"packets": [{"table": t, "id": k} for t, k, _ in packets if t == "staff"]},
            {"packets": [{"table": t, "id": k} for t, k, _ in packets if t != "staff"]},
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            results = [handler.lambda_handler(event, None) for event in events]
        handler.reset()
        assert all(r["status"] == "succeeded" for r in results), results
        # The fixture run's objects are immutable: copy them, and fetch only the new ones.
        copy = tmp_path_factory.mktemp("later") / "bucket"
        shutil.copytree(fixture_run.copy, copy)
        listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=names.processed_bucket)
                  for o in page.get("Contents", ())]  # fmt: skip
        for key in listed:
            if not (copy / key).exists():
                (copy / key).parent.mkdir(parents=True, exist_ok=True)
                (copy / key).write_bytes(s3.get_object(Bucket=names.processed_bucket, Key=key)["Body"].read())
    return copy


@contextlib.contextmanager
def _database_from(postgres: str, template: str, name: str):
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY file_copy")
    try:
        with psycopg.connect(postgres.replace("dbname=postgres", f"dbname={name}"), autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module", params=["fixture run", "later packets"])
def lake(request, postgres, _loaded_template, fixture_run):
    """(DuckDB over the lake through the views, the PostgreSQL warehouse of the same files)."""
    later = request.param == "later packets"
    directory = request.getfixturevalue("later_lake") if later else fixture_run.copy
    with _database_from(postgres, _loaded_template, "views_later" if later else "views_fixture") as warehouse:
        if later:  # the loader carries on from the fixture run's packets
            report = load(warehouse, LocalDirectory(directory))
            assert report.loaded and not report.waiting
        yield connect(directory), warehouse, later


def _warehouse_rows(warehouse, table) -> list[tuple]:
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    return warehouse.execute(sql.SQL("SELECT {} FROM {}").format(columns, sql.Identifier(table.name))).fetchall()


def test_every_view_holds_its_warehouse_table_row_for_row(lake):
    duck, warehouse, _ = lake
    for table in TABLES:
        names = ", ".join(f'"{c.name}"' for c in table.columns)
        through_view = duck.execute(f'SELECT {names} FROM "{table.name}"').fetchall()
        loaded = _warehouse_rows(warehouse, table)
        print(f"{table.name}: {len(through_view):,} rows through the view, {len(loaded):,} in the warehouse")
        assert len(through_view) == len(loaded), table.name
        assert Counter(through_view) == Counter(loaded), table.name


_DUCKDB_TYPES = {"integer": "INTEGER", "date": "DATE", "time(6)": "TIME", "varchar": "VARCHAR", "boolean": "BOOLEAN"}


def test_every_view_has_the_declared_columns_and_types(lake):
    duck, _, _ = lake
    for table in TABLES:
        described = [(name, kind) for name, kind, *_ in duck.execute(f'DESCRIBE "{table.name}"').fetchall()]
        declared = [(c.name, _DUCKDB_TYPES.get(c.trino_type, c.trino_type.upper())) for c in table.columns]
        assert described == declared, table.name


def test_raw_packets_are_not_the_warehouse_but_the_views_are(lake):
    duck, _, later = lake
    raw = duck.execute("SELECT count(*) FROM dim_date_packets").fetchone()[0]
    distinct = duck.execute("SELECT count(DISTINCT date_id) FROM dim_date_packets").fetchone()[0]
    view = duck.execute("SELECT count(*) FROM dim_date").fetchone()[0]
    assert raw > distinct == view
    if not later:  # the figures of docs/warehouse.md
        assert (raw, view) == (3112, 751)
        joined = duck.execute(
            "SELECT count(*) FROM fact_sales_order f JOIN dim_date d ON f.created_date = d.date_id"
        ).fetchone()[0]
        raw_joined = duck.execute(
            "SELECT count(*) FROM fact_sales_order_packets f JOIN dim_date_packets d ON f.created_date = d.date_id"
        ).fetchone()[0]
        assert (joined, raw_joined) == (11175, 49636)


def test_a_fact_joins_each_of_its_dimensions_once_per_row(lake):
    duck, _, _ = lake
    keys = {t.name: t.key for t in TABLES}
    checked = []
    for fact in FACTS:
        rows = duck.execute(f"SELECT count(*) FROM {fact.name}").fetchone()[0]
        assert rows > 0
        joins = [(r.column, r.dimension) for r in fact.references] + [(d, CALENDAR_TABLE) for d in fact.dates]
        for column, dimension in joins:
            joined = duck.execute(
                f"SELECT count(*) FROM {fact.name} f JOIN {dimension} d ON f.{column} = d.{keys[dimension]}"
            ).fetchone()[0]
            checked.append(f"{fact.name}.{column} -> {dimension}: {joined:,}/{rows:,}")
            assert joined == rows, checked[-1]
    print("\n".join(checked))
    assert len(checked) == sum(len(f.references) + len(f.dates) for f in FACTS)


def test_the_analysts_questions_get_the_warehouses_answers_through_the_views(lake):
    duck, warehouse, _ = lake
    for question in QUESTIONS:
        athena_sql = (ATHENA_QUESTIONS / question.file).read_text()
        cursor = duck.execute(trino_to_duckdb(athena_sql, TABLES))
        through_views = ([d[0] for d in cursor.description], cursor.fetchall())
        columns, rows = answer(warehouse, question)
        assert rows, question.file
        assert through_views == (columns, rows), question.file


@pytest.mark.parametrize("lake", ["later packets"], indirect=True)
def test_a_dimension_row_changed_later_shows_its_latest_version(lake):
    duck, warehouse, later = lake
    assert later
    versions = duck.execute(
        "SELECT regexp_extract(filename, '_packet_([0-9]+)_', 1), last_name FROM dim_staff_packets"
        f" WHERE staff_id = {RENAMED_STAFF}"
    ).fetchall()
    # Packets 9 and 10 both hold it: as text "9" > "10", as numbers 10 wins.
    assert {"9", "10"} <= {n for n, _ in versions} and len(versions) == 1 + len(RENAMES)
    (shown,) = duck.execute(f"SELECT last_name FROM dim_staff WHERE staff_id = {RENAMED_STAFF}").fetchone()
    (loaded,) = warehouse.execute("SELECT last_name FROM dim_staff WHERE staff_id = %s", (RENAMED_STAFF,)).fetchone()
    assert shown == loaded == f"Renamed{RENAMES[-1]}"
    # Department 6 moved: its staff (staff 2 among them) were re-emitted in a later packet.
    (location,) = duck.execute("SELECT location FROM dim_staff WHERE staff_id = 2").fetchone()
    assert location == "Leeds" == warehouse.execute("SELECT location FROM dim_staff WHERE staff_id = 2").fetchone()[0]
    # Address 15 changed: dim_location and counterparty 1, whose legal address it is.
    (city,) = duck.execute(f"SELECT city FROM dim_location WHERE location_id = {CHANGED_ADDRESS}").fetchone()
    (legal_city,) = duck.execute(
        "SELECT counterparty_legal_city FROM dim_counterparty WHERE counterparty_id = 1"
    ).fetchone()
    assert city == legal_city == "Elsewhere"


@pytest.mark.parametrize("lake", ["later packets"], indirect=True)
def test_times_are_exact_to_the_microsecond(lake):
    # The fixture's times are whole milliseconds: the later packets carry microseconds.
    duck, warehouse, later = lake
    assert later
    query = (
        "SELECT sales_order_id, created_time, last_updated_time FROM fact_sales_order"
        " WHERE last_updated_date >= DATE '2025-01-01' ORDER BY sales_order_id"
    )
    through_view = duck.execute(query).fetchall()
    assert through_view == warehouse.execute(query).fetchall()
    shown = {i: (str(c), str(u)) for i, c, u in through_view}
    assert shown == {
        i: (created[11:], updated[11:]) for i, (created, updated) in MICROSECOND_ORDERS.items()
    }


def test_trino_integer_division_stays_integer_division():
    # Untyped, sqlglot would write DuckDB's `/`, a float division: 7 / 2 = 3.5.
    con = connect(Path("/nonexistent"))  # empty tables of the declared types
    assert con.execute(trino_to_duckdb("SELECT CAST(7 AS bigint) / 2 AS half", TABLES)).fetchall() == [(3,)]
    untyped = sqlglot.transpile("SELECT CAST(7 AS bigint) / 2 AS half", read="trino", write="duckdb")[0]
    assert con.execute(untyped).fetchall() == [(3.5,)]


def test_every_output_table_has_a_view_of_its_warehouse_name_over_its_packets_table():
    assert sorted(t.name for t in TABLES) == sorted(OUTPUTS)
    assert all(t.packets_table == f"{t.name}_packets" for t in TABLES)


# -- the stars as docs/warehouse.md draws them ----------------------------------------------

_MERMAID_TYPES = {"integer": "int", "varchar": "varchar", "date": "date", "time(6)": "time", "boolean": "boolean"}
RECORD_IDS = {"fact_sales_order": "sales_record_id", "fact_purchase_order": "purchase_record_id",
              "fact_payment": "payment_record_id"}  # fmt: skip


def mermaid_star(fact_name: str) -> str:
    """The star of a fact as a mermaid entity-relationship diagram, from the declaration."""
    fact = OUTPUTS[fact_name]
    tables = {t.name: t for t in TABLES}
    links = [(r.column, r.dimension) for r in fact.references] + [(d, CALENDAR_TABLE) for d in fact.dates]
    dimensions = list(dict.fromkeys(d for _, d in links))
    lines = ["erDiagram"]
    lines += [f'    {fact_name} }}o--|| {dimension} : "{column}"' for column, dimension in links]
    for name in [fact_name, *dimensions]:
        table = tables[name]
        keys = {c for c, _ in links} if name == fact_name else {table.key}
        lines.append(f"    {name} {{")
        if name in RECORD_IDS:
            lines.append(f'        serial {RECORD_IDS[name]} PK "the warehouse\'s own; not in the lake"')
        for c in table.columns:
            kind = "numeric" if c.trino_type.startswith("decimal") else _MERMAID_TYPES[c.trino_type]
            mark = (" PK" if c.name == table.key else " FK" if c.name in keys else "")
            note = f' "{c.trino_type[7:]}"' if kind == "numeric" else ""
            lines.append(f"        {kind} {c.name}{mark}{note}")
        lines.append("    }")
    return "\n".join(lines)


def test_docs_draw_each_star_as_the_declaration_has_it():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "warehouse.md").read_text()
    for fact in FACTS:
        diagram = mermaid_star(fact.name)
        print(f"```mermaid\n{diagram}\n```\n")
        assert f"```mermaid\n{diagram}\n```" in docs, f"docs/warehouse.md: the {fact.name} star differs (-s prints it)"


def test_docs_show_the_athena_questions_as_tested():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "warehouse.md").read_text()
    for question in QUESTIONS:
        lines = (ATHENA_QUESTIONS / question.file).read_text().splitlines()
        body = "\n".join(line for line in lines if not line.startswith("--")).strip()
        assert f"```sql\n{body}\n```" in docs, question.file


def test_make_query_prints_the_answer_through_the_views(fixture_run, capsys):
    sql_text = "select count(*) from fact_sales_order join dim_date on created_date = date_id"
    assert query.main([sql_text, "--dir", str(fixture_run.copy)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].strip() == "11175" and printed[-1] == "(1 row)", printed
    athena_file = str(ATHENA_QUESTIONS / "sales_per_currency_per_month.sql")
    assert query.main([athena_file, "--dir", str(fixture_run.copy), "--rows", "2"]) == 0
    assert "currency_code" in capsys.readouterr().out
