"""`make query "SELECT ..."`: an analyst's local way in. DuckDB over `make run`'s out/
through the same views Athena has (sandbox/lake.py), for a query in Athena's dialect
given as a string or a .sql file; prints an aligned table.

    make query "select count(*) from fact_sales_order join dim_date on created_date = date_id"
    python -m sandbox.query warehouse/questions/athena/sales_per_currency_per_month.sql
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import sqlglot.errors

from cdk_app.athena_views import lake_tables
from sandbox.analysts import render
from sandbox.lake import connect, trino_to_duckdb

ROOT = Path(__file__).resolve().parent.parent


def read_query(text_or_file: str) -> str:
    """The SQL itself, or the contents of the file it names."""
    path = Path(text_or_file)
    if text_or_file.endswith(".sql") or (len(text_or_file) < 256 and path.is_file()):
        return path.read_text()
    return text_or_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", help="SQL in Athena's (Trino's) dialect, or a .sql file holding it")
    parser.add_argument("--dir", type=Path, default=ROOT / "out",
                        help="a downloaded copy of the processed bucket (make run leaves one in out/)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=100, help="show at most this many rows (default 100)")
    parser.add_argument("--show-sql", action="store_true", help="print the DuckDB SQL the query became")
    args = parser.parse_args(argv)
    if not args.query.strip():
        parser.error('give a query: make query "SELECT ..." (or a .sql file)')
    if not args.dir.is_dir():
        print(f"{args.dir} is not a directory: run `make run` first", file=sys.stderr)
        return 2
    try:
        sql = trino_to_duckdb(read_query(args.query), lake_tables())
    except (sqlglot.errors.SqlglotError, OSError) as exc:
        print(f"cannot read the query: {exc}", file=sys.stderr)
        return 2
    if args.show_sql:
        print(sql + "\n")
    con = connect(args.dir)
    try:
        cursor = con.execute(sql)
    except duckdb.Error as exc:
        print(f"query failed: {exc}", file=sys.stderr)
        return 1
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    print(render(columns, rows, args.rows))
    print(f"({len(rows):,} row{'s' if len(rows) != 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
