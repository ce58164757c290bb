"""The lake as Athena sees it, with DuckDB as the stand-in engine (docs/design.md#catalog).

Over a downloaded copy of the processed bucket (`make run` leaves one in out/), each
output table gets what the stack declares in the Glue Data Catalog (cdk_app/catalog.py):

- `{table}_packets`: every row of every packet, typed as Athena reads the Parquet under
  the Glue table (`*_time` as bigint microseconds since midnight), with DuckDB's
  `filename` where Athena has `"$path"`;
- `{table}`: the view, whose SQL is the one the stack stores (cdk_app/athena_views.py),
  transpiled from Trino's dialect to DuckDB's with sqlglot, typed with the catalog's
  column types so that Trino's integer division stays integer division.

A query in Athena's dialect runs here through `trino_to_duckdb` as it would in Athena
(`make query`, sandbox/query.py; tests/warehouse/test_views.py).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from cdk_app.athena_views import LakeTable, lake_tables

PATH_COLUMN = "$path"  # Athena's (Trino's) hidden column: the object's s3:// path
FILENAME = "filename"  # DuckDB's read_parquet(filename = true) column: the file's path


def catalog_schema(tables: tuple[LakeTable, ...]) -> dict[str, dict[str, str]]:
    """Each Glue table's and view's columns with the types Athena gives them."""
    schema: dict[str, dict[str, str]] = {}
    for table in tables:
        schema[table.packets_table] = {
            **{c.name: "bigint" if c.is_time else c.trino_type for c in table.columns},
            PATH_COLUMN: "varchar",
        }
        schema[table.name] = {c.name: c.trino_type for c in table.columns}
    return schema


def trino_to_duckdb(sql: str, tables: tuple[LakeTable, ...]) -> str:
    """One statement in Athena's dialect → DuckDB's, over the tables of `connect`."""
    schema = catalog_schema(tables)
    tree = sqlglot.parse_one(sql, read="trino")
    # Qualified and typed: sqlglot then writes Trino's integer division of two integers
    # as DuckDB's truncating form, not DuckDB's float `/`.
    tree = annotate_types(qualify(tree, schema=schema, dialect="trino"), schema=schema, dialect="trino")
    for column in list(tree.find_all(exp.Column)):
        if column.name == PATH_COLUMN:
            column.set("this", exp.to_identifier(FILENAME))
    return tree.sql(dialect="duckdb", pretty=True)


def connect(directory: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with every `{table}_packets` table and `{table}` view over
    `directory` (a copy of the processed bucket: `{table}/` prefixes of Parquet files)."""
    tables = lake_tables()
    con = duckdb.connect()
    for table in tables:
        con.execute(f'CREATE VIEW "{table.packets_table}" AS {_packets_select(table, directory)}')
    for table in tables:
        con.execute(f'CREATE VIEW "{table.name}" AS {trino_to_duckdb(table.view_sql(), tables)}')
    return con


def _packets_select(table: LakeTable, directory: Path) -> str:
    """The Glue table's rows, as Athena reads them: TIME(MICROS) as its int64 value."""
    files = sorted((directory / table.name).glob("*.parquet"))
    if not files:  # an empty prefix: an empty table of the declared types
        typed = [f'CAST(NULL AS {"BIGINT" if c.is_time else c.trino_type}) AS "{c.name}"' for c in table.columns]
        return f"SELECT {', '.join(typed)}, CAST(NULL AS VARCHAR) AS {FILENAME} WHERE false"
    columns = [f'epoch_us("{c.name}") AS "{c.name}"' if c.is_time else f'"{c.name}"' for c in table.columns]
    listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    # Declared names and quoted file paths only.
    return f"SELECT {', '.join(columns)}, {FILENAME} FROM read_parquet([{listed}], filename = true)"  # nosec B608
