"""The DDL's tables as Arrow, read from PostgreSQL's catalog."""

from __future__ import annotations

import pyarrow as pa


def ddl_columns(conn, table: str) -> dict[str, pa.Field]:
    """The table's columns as the Arrow fields they must be written with (DESIGN §4's
    type mapping), SERIAL record ids left out."""
    fields = {}
    for name, data_type, precision, scale, time_precision, nullable, default in conn.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale, datetime_precision,"
        " is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ):
        if (default or "").startswith("nextval("):
            continue
        arrow = {
            "integer": pa.int32(),
            "numeric": pa.decimal128(precision, scale) if precision is not None else None,
            "date": pa.date32(),
            "time without time zone": pa.time64("us") if time_precision == 6 else None,
            "character varying": pa.string(),
            "boolean": pa.bool_(),
        }.get(data_type)
        assert arrow is not None, f"{table}.{name}: {data_type} has no Parquet type in DESIGN §4"
        fields[name] = pa.field(name, arrow, nullable=nullable == "YES")
    return fields


def ddl_schema(conn, table: str) -> pa.Schema:
    """The Parquet schema the DDL asks for, in the DDL's column order."""
    return pa.schema(list(ddl_columns(conn, table).values()))
