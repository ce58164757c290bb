"""The analysts' side: their questions, one per star (SQL in warehouse/questions/),
and `make warehouse`: `python -m sandbox.analysts [DIR]` loads a downloaded copy of the
processed bucket (`make run` leaves one in out/) into a throwaway PostgreSQL with
sandbox/warehouse.py and prints each table's packets and rows and the answers."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

from sandbox.local_store import LocalDirectory
from sandbox.postgres import KeptCluster, throwaway_cluster
from sandbox.warehouse import ROOT, create_warehouse, load, warehouse_tables

QUESTIONS_DIR = ROOT / "warehouse" / "questions"


@dataclass(frozen=True)
class Question:
    star: str
    title: str
    file: str
    fact: str  # the fact table it reads; it has an answer once the processor writes it

    @property
    def sql(self) -> str:
        return (QUESTIONS_DIR / self.file).read_text()


QUESTIONS: tuple[Question, ...] = (
    Question("Sales", "sales per currency per month", "sales_per_currency_per_month.sql", "fact_sales_order"),
    Question("Purchases", "purchase spend per counterparty", "purchase_spend_per_counterparty.sql", "fact_purchase_order"),
    Question("Payments", "payments paid vs unpaid per payment type", "payments_paid_vs_unpaid_per_payment_type.sql", "fact_payment"),
)


def answer(conn: psycopg.Connection, question: Question) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of a question's SQL."""
    cur = conn.execute(question.sql)
    return [c.name for c in cur.description], cur.fetchall()


def render(columns: list[str], rows: list[tuple], limit: int | None = None) -> str:
    """A plain text table, right-aligned numbers, for the terminal and the notes."""
    shown = rows if limit is None else rows[:limit]
    cells = [columns] + [["" if v is None else str(v) for v in row] for row in shown]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    numeric = [all(isinstance(r[i], (int, Decimal)) for r in shown) for i in range(len(columns))]
    lines = [
        "  ".join(c.rjust(w) if numeric[i] and k else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for k, r in enumerate(cells)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if limit is not None and len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, nargs="?", default=ROOT / "out",
                        help="a downloaded copy of the processed bucket (make run leaves one in out/)")
    parser.add_argument("--rows", type=int, default=None, help="show at most this many rows per answer (default: all)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the loaded cluster running and print its connection string, to ask more")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"{args.directory} is not a directory: run `make run` first", file=sys.stderr)
        return 2
    kept: list[KeptCluster] | None = [] if args.keep else None
    with throwaway_cluster(kept) as conninfo, psycopg.connect(conninfo, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"throwaway PostgreSQL {version}; warehouse/schema.sql; loading {args.directory}")
        create_warehouse(conn)
        report = load(conn, LocalDirectory(args.directory))
        print(f"    {'table':<22}{'packets':>8}{'rows loaded':>13}{'rows in table':>15}")
        for table in warehouse_tables(conn):
            packets = [p for p in report.loaded if p.table == table]
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            print(f"    {table:<22}{len(packets):>8}{sum(p.rows for p in packets):>13,}{count:>15,}")
        for question in QUESTIONS:
            columns, rows = answer(conn, question)
            print(f"\n{question.star} star: {question.title} (warehouse/questions/{question.file})")
            print(render(columns, rows, args.rows) if rows else f"    no rows: {question.fact} is empty")
    for cluster in kept or ():
        print(f"\nthe warehouse is still running: psql \"{cluster.conninfo}\"")
        print(f"stop it and remove its files with: {cluster.stop_command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
