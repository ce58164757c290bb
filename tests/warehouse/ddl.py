"""The DDL's tables as the Arrow fields their Parquet must hold (the loader reads them
from PostgreSQL's catalog with the type mapping of docs/design.md#tables)."""

from __future__ import annotations

import pyarrow as pa

from sandbox.warehouse import warehouse_tables


def ddl_columns(conn, table: str) -> dict[str, pa.Field]:
    """SERIAL record ids left out."""
    return {f.name: f for f in warehouse_tables(conn)[table].schema}


def ddl_schema(conn, table: str) -> pa.Schema:
    """In the DDL's column order."""
    return warehouse_tables(conn)[table].schema
