"""The worst values first: whatever text, decimals, dates and times a file holds
arrive in PostgreSQL unchanged (CSV quoting, NULL against '', the ends of each range)."""

from __future__ import annotations

import io
import tempfile
from datetime import date, time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.local_store import LocalDirectory
from sandbox.warehouse import load
from tests.warehouse.ddl import ddl_schema

# Any text PostgreSQL can hold (not U+0000, which the processor rejects anyway):
# quotes, commas, CR/LF, backslashes, 'NULL', '\N', emoji, lone combining marks.
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["", "NULL", "\\N", '"', '""', ",", "\r\n", "\\", " ", "'; DROP TABLE dim_location; --"]
)


def write(root: Path, table: str, schema: pa.Schema, rows: list[tuple], n: int = 1) -> None:
    body = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema), body)
    LocalDirectory(root).put_if_absent(
        f"{table}/{table}_packet_{n}_processed_20240102T092610.123456Z.parquet", body.getvalue(), {}
    )


def reset(conn) -> None:
    conn.execute("TRUNCATE loader.loaded_packet, fact_sales_order, fact_purchase_order, fact_payment,"
                 " dim_date, dim_staff, dim_location, dim_currency, dim_design, dim_counterparty,"
                 " dim_transaction, dim_payment_type")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(TEXT, TEXT | st.none(), TEXT | st.none()), min_size=1, max_size=8))
def test_any_text_and_null_arrive_unchanged(warehouse, texts):
    reset(warehouse)
    rows = [(i, line_1, line_2, district, "city", "postal", "country", "phone")
            for i, (line_1, line_2, district) in enumerate(texts, start=1)]
    with tempfile.TemporaryDirectory() as root:
        write(Path(root), "dim_location", ddl_schema(warehouse, "dim_location"), rows)
        load(warehouse, LocalDirectory(Path(root)))
    assert warehouse.execute("SELECT * FROM dim_location ORDER BY location_id").fetchall() == rows


def test_the_ends_of_each_range_arrive_unchanged(warehouse, tmp_path):
    first, last = date(1, 1, 1), date(9999, 12, 31)
    midnight, just_before = time(0, 0), time(23, 59, 59, 999999)
    schema = {t: ddl_schema(warehouse, t) for t in ("dim_date", "dim_staff", "dim_location", "dim_currency",
                                                     "dim_design", "dim_counterparty", "fact_sales_order")}
    write(tmp_path, "dim_date", schema["dim_date"], [
        (first, 1, 1, 1, 1, "Monday", "January", 1), (last, 9999, 12, 31, 5, "Friday", "December", 4),
    ])
    write(tmp_path, "dim_staff", schema["dim_staff"], [(1, "A", "B", "Sales", "Leeds", "a@b.c")])
    write(tmp_path, "dim_location", schema["dim_location"], [(1, "x", None, None, "c", "p", "k", "0")])
    write(tmp_path, "dim_currency", schema["dim_currency"], [(1, "GBP", "Pound Sterling")])
    write(tmp_path, "dim_design", schema["dim_design"], [(1, "Wooden", "/usr", "wooden.json")])
    write(tmp_path, "dim_counterparty", schema["dim_counterparty"],
          [(1, "Fahey", "x", None, None, "c", "p", "k", "0")])
    facts = [
        (2147483647, first, midnight, last, just_before, 1, 1, 2147483647, Decimal("99999999.99"), 1, 1, first, last, 1),
        (1, last, just_before, first, midnight, 1, 1, 0, Decimal("0.00"), 1, 1, last, first, 1),
        (2, first, time(12, 0, 0, 1), first, time(0, 0, 0, 10), 1, 1, 1, Decimal("0.01"), 1, 1, first, first, 1),
    ]
    write(tmp_path, "fact_sales_order", schema["fact_sales_order"], facts)
    load(warehouse, LocalDirectory(tmp_path))
    columns = ", ".join(schema["fact_sales_order"].names)
    assert sorted(warehouse.execute(f"SELECT {columns} FROM fact_sales_order").fetchall()) == sorted(facts)
