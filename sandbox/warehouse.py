"""The warehouse loader: the processed bucket's Parquet into the analysts' PostgreSQL
(docs/design.md#keys, #observability).

What a loader must do with this processor's output, and what this one does:

- Each output table's files are numbered n = 1, 2, 3, … with no gaps; file n is
  complete once `produced/{table}` ≥ n. Packets are loaded in order, each in its own
  transaction together with a row in `loader.loaded_packet` (table, n, key, sha256),
  so a packet is never loaded twice (a second attempt is a no-op; the same n under
  another key or content is refused) and a missing n is noticed, not skipped.
- Tables load in the order of the DDL's foreign keys (dimensions, dim_date among them,
  before the facts that refer to them). The produced ids are read in the reverse
  order, facts first: a fact file committed after that read cannot be loaded before
  the dimension rows it refers to.
- A table whose primary key is written (a dimension) is upserted by that key, the
  later packet winning; a table whose key is the warehouse's SERIAL (a fact) is
  appended. Both are derived from warehouse/schema.sql through the catalog.
- Only the tables' own prefixes are listed: the processor's `_` prefixes (docs/design.md#keys) are
  never read.
- A file whose column names or Arrow types differ from the DDL is refused (COPY would
  cast text silently, e.g. round a third decimal place).

Kept whole (a little over 300 lines) so the loading rules read in one place.
`make warehouse` (sandbox/analysts.py) loads `make run`'s out/ into a throwaway
cluster with this loader and prints the analysts' answers.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from runtime.ports import ProcessedStore

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_SQL = ROOT / "warehouse" / "schema.sql"

_OUTPUT_KEY = re.compile(
    r"^(?P<table>[a-z_]+)/(?P=table)_packet_(?P<n>[1-9][0-9]*)_processed_\d{8}T\d{6}\.\d{6}Z\.parquet$"
)

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS loader;
CREATE TABLE IF NOT EXISTS loader.loaded_packet (
    table_name  varchar     NOT NULL,
    packet      int         NOT NULL CHECK (packet > 0),
    object_key  varchar     NOT NULL,
    sha256      char(64)    NOT NULL,
    rows        int         NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, packet)
);
"""


class LoadError(Exception):
    """The bucket holds something the loader must not load as it is."""


class PacketGapError(LoadError):
    """Packet n of a table is missing while a later one is complete."""


class PacketConflictError(LoadError):
    """Packet n of a table is already loaded from another object or other bytes."""


@dataclass(frozen=True)
class WarehouseTable:
    """One table of the DDL, as the catalog describes it."""

    name: str
    # The columns the processor writes (SERIALs excluded), as the Arrow fields their
    # Parquet must hold (docs/design.md#tables's type mapping, NOT NULL as not nullable).
    schema: pa.Schema
    primary_key: tuple[str, ...]
    references: frozenset[str]  # tables its foreign keys point at

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)

    @property
    def upserted(self) -> bool:
        """A dimension: its key is written, so a newer row replaces the older one."""
        return bool(self.primary_key) and set(self.primary_key) <= set(self.columns)


@dataclass(frozen=True)
class LoadedPacket:
    table: str
    n: int
    key: str
    rows: int


@dataclass
class LoadReport:
    loaded: list[LoadedPacket] = field(default_factory=list)
    # Present in the bucket but not yet committed (n > produced): left for next time.
    waiting: dict[str, list[int]] = field(default_factory=dict)


def create_warehouse(conn: psycopg.Connection) -> None:
    """The analysts' DDL and the loader's bookkeeping, in one transaction."""
    with conn.transaction():
        conn.execute(SCHEMA_SQL.read_text())
        conn.execute(_BOOKKEEPING)


def _arrow_type(data_type: str, precision: int | None, scale: int | None, time_precision: int | None):
    return {
        "integer": pa.int32(),
        "numeric": pa.decimal128(precision, scale) if precision is not None else None,
        "date": pa.date32(),
        "time without time zone": pa.time64("us") if time_precision == 6 else None,
        "character varying": pa.string(),
        "boolean": pa.bool_(),
    }.get(data_type)


def warehouse_tables(conn: psycopg.Connection) -> dict[str, WarehouseTable]:
    """The public schema's tables, in load order (a table after those it refers to)."""
    columns: dict[str, list[pa.Field]] = {}
    for table, column, default, nullable, *type_ in conn.execute(
        "SELECT table_name, column_name, column_default, is_nullable, data_type, numeric_precision,"
        " numeric_scale, datetime_precision FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ):
        if (default or "").startswith("nextval("):  # a SERIAL: the warehouse's own
            continue
        arrow = _arrow_type(*type_)
        if arrow is None:
            raise LoadError(f"{table}.{column}: {type_[0]} has no Parquet type in docs/design.md#tables")
        columns.setdefault(table, []).append(pa.field(column, arrow, nullable=nullable == "YES"))
    keys: dict[str, list[str]] = {}
    references: dict[str, set[str]] = {t: set() for t in columns}
    for table, kind, target, key_columns in conn.execute(
        "SELECT c.conrelid::regclass::text, c.contype, c.confrelid::regclass::text,"
        " array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
        "       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)"
        " FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace"
        " WHERE s.nspname = 'public' AND c.contype IN ('p', 'f')"
    ):
        if kind == "p":
            keys[table] = key_columns
        elif target != table:
            references[table].add(target)
    described = {
        t: WarehouseTable(t, pa.schema(columns[t]), tuple(keys.get(t, ())), frozenset(references[t]))
        for t in columns
    }
    return {t: described[t] for t in _dependency_order(described)}


def _dependency_order(tables: dict[str, WarehouseTable]) -> list[str]:
    order: list[str] = []
    remaining = dict(tables)
    while remaining:
        ready = sorted(t for t, d in remaining.items() if d.references <= set(order))
        if not ready:
            raise LoadError(f"the foreign keys of {sorted(remaining)} form a cycle")
        order.extend(ready)
        for t in ready:
            del remaining[t]
    return order


def output_packets(store: ProcessedStore, tables: Iterable[str]) -> dict[str, dict[int, str]]:
    """n → key of every output file in the bucket, per table.

    Only the tables' own prefixes are listed, so the processor's `_` prefixes are never
    read. An object there that is not an output file, or two objects with the same n,
    is an error: the loader does not guess.
    """
    found: dict[str, dict[int, str]] = {}
    for table in tables:
        packets = found[table] = {}
        for key in store.list_keys(f"{table}/"):
            match = _OUTPUT_KEY.match(key)
            if not match or match["table"] != table:
                raise LoadError(f"{key!r} is not an output file of {table}")
            n = int(match["n"])
            if n in packets:
                raise PacketConflictError(f"{table} packet {n} has two objects: {packets[n]!r} and {key!r}")
            packets[n] = key
    return found


def load(
    conn: psycopg.Connection,
    store: ProcessedStore,
    produced: Callable[[str], int] | None = None,
) -> LoadReport:
    """Load every complete packet not loaded yet, table by table in load order.

    `produced(table)` is the number of committed packets of a table (the processor's
    `produced/{table}` parameter); without it every packet present counts as complete
    (a downloaded copy of the bucket). Raises PacketGapError at the first missing
    packet, after committing the packets before it.
    """
    if not conn.autocommit:
        raise ValueError("load() commits packet by packet: give it an autocommit connection")
    tables = warehouse_tables(conn)
    present = output_packets(store, tables)
    complete = {
        t: produced(t) if produced else max(present[t], default=0) for t in reversed(tables)
    }
    report = LoadReport()
    for name, table in tables.items():
        loaded = _loaded_keys(conn, name)
        for n, key in present[name].items():
            if n in loaded and loaded[n] != key:
                raise PacketConflictError(f"{name} packet {n} was loaded from {loaded[n]!r}, the bucket now has {key!r}")
        waiting = sorted(n for n in present[name] if n > complete[name])
        if waiting:
            report.waiting[name] = waiting
        for n in range(max(loaded, default=0) + 1, complete[name] + 1):
            if n not in present[name]:
                raise PacketGapError(
                    f"{name} packet {n} is missing from the bucket, but {complete[name]} are committed"
                    f"{' and packet ' + str(max(present[name])) + ' is there' if present[name] else ''}:"
                    " not loading past it"
                )
            key = present[name][n]
            body = store.read(key)
            if body is None:
                raise PacketGapError(f"{name} packet {n} ({key!r}) vanished from the bucket")
            if load_packet(conn, table, n, key, body):
                report.loaded.append(LoadedPacket(name, n, key, pq.read_metadata(io.BytesIO(body)).num_rows))
    return report


def _loaded_keys(conn: psycopg.Connection, table: str) -> dict[int, str]:
    rows = conn.execute(
        "SELECT packet, object_key FROM loader.loaded_packet WHERE table_name = %s", (table,)
    )
    return dict(rows.fetchall())


def load_packet(conn: psycopg.Connection, table: WarehouseTable, n: int, key: str, body: bytes) -> bool:
    """Load one packet in one transaction. False when it was loaded already (same key,
    same bytes); PacketConflictError when n was loaded from something else, or when
    packet n - 1 is not loaded yet."""
    sha256 = hashlib.sha256(body).hexdigest()
    rows = pq.read_table(io.BytesIO(body))
    if set(rows.column_names) != set(table.columns):
        raise LoadError(
            f"{key!r} has columns {sorted(rows.column_names)}, the warehouse's {table.name} has {sorted(table.columns)}"
        )
    # COPY would cast text silently (3 decimals rounded to 2): the types must be the DDL's.
    for expected in table.schema:
        if rows.schema.field(expected.name).type != expected.type:
            raise LoadError(
                f"{key!r}: {expected.name} is {rows.schema.field(expected.name).type}, the warehouse's is {expected.type}"
            )
    # CSV is COPY's fastest text path, and Arrow writes it vectorized: decimals,
    # dates and times in ISO text, NULL unquoted-empty, every string quoted.
    csv = io.BytesIO()
    pacsv.write_csv(rows.select(list(table.columns)), csv)
    with conn.transaction():
        previous = conn.execute(
            "SELECT object_key, sha256 FROM loader.loaded_packet WHERE table_name = %s AND packet = %s",
            (table.name, n),
        ).fetchone()
        if previous == (key, sha256):
            return False
        if previous is not None:
            raise PacketConflictError(f"{table.name} packet {n} was loaded from {previous[0]!r} ({previous[1]})")
        if n > 1 and conn.execute(
            "SELECT 1 FROM loader.loaded_packet WHERE table_name = %s AND packet = %s", (table.name, n - 1)
        ).fetchone() is None:
            raise PacketGapError(f"{table.name} packet {n - 1} is not loaded yet: not loading packet {n}")
        # The primary key refuses a concurrent loader that got here first.
        conn.execute(
            "INSERT INTO loader.loaded_packet (table_name, packet, object_key, sha256, rows)"
            " VALUES (%s, %s, %s, %s, %s)",
            (table.name, n, key, sha256, rows.num_rows),
        )
        copied = _copy_in(conn, table, csv.getvalue())
        if copied != rows.num_rows:
            raise LoadError(f"{key!r}: {rows.num_rows} rows in the file, {copied} copied")
    return True


def _copy_in(conn: psycopg.Connection, table: WarehouseTable, csv: bytes) -> int:
    columns = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    target = sql.Identifier(table.name)
    if table.upserted:
        target = sql.Identifier("incoming")
        conn.execute(
            sql.SQL("CREATE TEMP TABLE incoming ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                columns, sql.Identifier(table.name)
            )
        )
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(target, columns)) as copy:
            copy.write(csv)
        copied = cur.rowcount
    if table.upserted:
        others = [c for c in table.columns if c not in table.primary_key]
        action = (
            sql.SQL("DO UPDATE SET ")
            + sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others)
            if others
            else sql.SQL("DO NOTHING")
        )
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM incoming ON CONFLICT ({}) ").format(
                sql.Identifier(table.name), columns, columns,
                sql.SQL(", ").join(map(sql.Identifier, table.primary_key)),
            )
            + action
        )
    return copied
