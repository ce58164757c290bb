"""warehouse/schema.sql against what the processor writes: every output table's Parquet
schema (as the runtime declares it) has exactly the DDL's columns, types and NOT NULL,
and the DDL holds all eleven tables with the keys of docs/design.md#tables.

The DDL is read back from PostgreSQL's catalog after running it, so what is compared
is what the warehouse really holds, not a parse of the text.
"""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pytest

from runtime.star import ARROW_SCHEMAS
from runtime.tables import OUTPUT_TABLES
from sandbox.warehouse import warehouse_tables
from tests.warehouse.ddl import ddl_columns, ddl_schema

ALL_ELEVEN = {
    "dim_date", "dim_staff", "dim_location", "dim_currency", "dim_design", "dim_counterparty",
    "fact_sales_order", "fact_purchase_order", "fact_payment", "dim_transaction", "dim_payment_type",
}
RECORD_IDS = {
    "fact_sales_order": "sales_record_id",
    "fact_purchase_order": "purchase_record_id",
    "fact_payment": "payment_record_id",
}


def test_the_ddl_holds_all_eleven_tables(warehouse):
    assert set(warehouse_tables(warehouse)) == ALL_ELEVEN


@pytest.mark.parametrize("table", OUTPUT_TABLES)
def test_each_declared_output_table_matches_the_ddl(warehouse, table):
    """Iterates what the runtime declares, so a table the runtime adds is covered."""
    written = {f.name: f for f in ARROW_SCHEMAS[table]}
    expected = ddl_columns(warehouse, table)
    assert sorted(written) == sorted(expected), f"{table}: column names differ"
    for name, field in written.items():
        assert field.type == expected[name].type, f"{table}.{name}: Parquet {field.type}, DDL {expected[name].type}"
        assert field.nullable == expected[name].nullable, (
            f"{table}.{name}: Parquet nullable={field.nullable}, DDL nullable={expected[name].nullable}"
        )


def test_every_declared_output_table_is_in_the_ddl():
    assert set(OUTPUT_TABLES) <= ALL_ELEVEN and set(ARROW_SCHEMAS) == set(OUTPUT_TABLES)


def test_the_record_ids_are_the_warehouses_serials(warehouse):
    serials = dict(warehouse.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND column_default LIKE 'nextval(%%'"
    ).fetchall())
    assert serials == RECORD_IDS
    tables = warehouse_tables(warehouse)
    for fact, record_id in RECORD_IDS.items():
        assert tables[fact].primary_key == (record_id,) and not tables[fact].upserted


def test_dimension_keys_and_every_foreign_key_of_the_contract(warehouse):
    tables = warehouse_tables(warehouse)
    dimensions = {t: d.primary_key for t, d in tables.items() if d.upserted}
    assert dimensions == {
        "dim_date": ("date_id",), "dim_staff": ("staff_id",), "dim_location": ("location_id",),
        "dim_currency": ("currency_id",), "dim_design": ("design_id",),
        "dim_counterparty": ("counterparty_id",), "dim_transaction": ("transaction_id",),
        "dim_payment_type": ("payment_type_id",),
    }
    foreign_keys = set(warehouse.execute(
        "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, r.attname"
        " FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]"
        " WHERE c.contype = 'f'"
    ).fetchall())
    dates = ("created_date", "last_updated_date")
    assert foreign_keys == {
        *{("fact_sales_order", c, "dim_date", "date_id")
          for c in (*dates, "agreed_payment_date", "agreed_delivery_date")},
        ("fact_sales_order", "sales_staff_id", "dim_staff", "staff_id"),
        ("fact_sales_order", "counterparty_id", "dim_counterparty", "counterparty_id"),
        ("fact_sales_order", "currency_id", "dim_currency", "currency_id"),
        ("fact_sales_order", "design_id", "dim_design", "design_id"),
        ("fact_sales_order", "agreed_delivery_location_id", "dim_location", "location_id"),
        *{("fact_purchase_order", c, "dim_date", "date_id")
          for c in (*dates, "agreed_payment_date", "agreed_delivery_date")},
        ("fact_purchase_order", "staff_id", "dim_staff", "staff_id"),
        ("fact_purchase_order", "counterparty_id", "dim_counterparty", "counterparty_id"),
        ("fact_purchase_order", "currency_id", "dim_currency", "currency_id"),
        ("fact_purchase_order", "agreed_delivery_location_id", "dim_location", "location_id"),
        *{("fact_payment", c, "dim_date", "date_id") for c in (*dates, "payment_date")},
        ("fact_payment", "transaction_id", "dim_transaction", "transaction_id"),
        ("fact_payment", "counterparty_id", "dim_counterparty", "counterparty_id"),
        ("fact_payment", "currency_id", "dim_currency", "currency_id"),
        ("fact_payment", "payment_type_id", "dim_payment_type", "payment_type_id"),
    }
    # Dimensions before the facts that refer to them, dim_date among them.
    order = list(tables)
    assert max(order.index(t) for t in dimensions) < min(order.index(f) for f in RECORD_IDS)


@pytest.mark.parametrize("sales, purchase", [(None, None), (1, 2)])
def test_a_transaction_names_exactly_one_order(warehouse, sales, purchase):
    with pytest.raises(psycopg.errors.CheckViolation):
        warehouse.execute(
            "INSERT INTO dim_transaction VALUES (1, 'SALE', %s, %s)", (sales, purchase)
        )


def test_the_four_new_tables_have_the_types_of_design_4b(warehouse):
    """Literal, since the runtime does not declare all of them yet."""
    i, d, s, day, t = pa.int32(), pa.decimal128(10, 2), pa.string(), pa.date32(), pa.time64("us")

    def f(name, type_, nullable=False):
        return pa.field(name, type_, nullable=nullable)

    audit = [f("created_date", day), f("created_time", t), f("last_updated_date", day), f("last_updated_time", t)]
    assert {t: ddl_schema(warehouse, t) for t in ("fact_purchase_order", "fact_payment", "dim_transaction",
                                                   "dim_payment_type")} == {
        "fact_purchase_order": pa.schema([
            f("purchase_order_id", i), *audit, f("staff_id", i), f("counterparty_id", i), f("item_code", s),
            f("item_quantity", i), f("item_unit_price", d), f("currency_id", i), f("agreed_delivery_date", day),
            f("agreed_payment_date", day), f("agreed_delivery_location_id", i),
        ]),
        "fact_payment": pa.schema([
            f("payment_id", i), *audit, f("transaction_id", i), f("counterparty_id", i), f("payment_amount", d),
            f("currency_id", i), f("payment_type_id", i), f("paid", pa.bool_()), f("payment_date", day),
        ]),
        "dim_transaction": pa.schema([
            f("transaction_id", i), f("transaction_type", s), f("sales_order_id", i, nullable=True),
            f("purchase_order_id", i, nullable=True),
        ]),
        "dim_payment_type": pa.schema([f("payment_type_id", i), f("payment_type_name", s)]),
    }
