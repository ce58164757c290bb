"""Direct queries (docs/design.md#catalog): the Glue tables over the processed bucket's
packets, and the Athena views that present them as the loaded warehouse holds them.

Generated from the one declaration, never written per table: the kind of each output
table from runtime/tables.py, its columns, their types (as the Parquet files the runtime
writes carry them) and a dimension's key from runtime/columns.py, which the runtime's
Parquet and pandera schemas derive from too. Pure: no CDK, no AWS, and nothing of
pandas, pyarrow or pandera loaded. The stack stores the Glue tables
and the views (cdk_app/catalog.py); `make query` and the tests run the same view SQL
through DuckDB (sandbox/lake.py).

Read raw, the packets are not the warehouse: dim_date repeats a date in every packet
that references it, and a changed dimension row is a new row whose order shows only in
the key's packet number. So each view is, in Athena's (Trino's) dialect:

- a dimension (dim_date too): the latest row per key, the one of the highest output
  packet number `n` parsed from the object's key (`"$path"`) and compared as a number,
  as the loader's upsert leaves it (the key's timestamp need not rise with `n`);
- a fact: every row (every version, as the loader appends them).

Trino reads a Parquet TIME(MICROS) column of a Hive/Glue table as `bigint` (Athena's DDL
has no TIME type; trinodb/trino#16362): the Glue tables declare `*_time` as `bigint`
microseconds since midnight, and the views turn them back into `time(6)` exactly, with
integer arithmetic only (Trino's `date_add` has no microsecond unit and its intervals
stop at milliseconds).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from runtime.columns import OUTPUT_COLUMNS
from runtime.tables import FACT, OUTPUTS

# The catalog name under which Athena sees the account's Glue Data Catalog.
ATHENA_CATALOG = "awsdatacatalog"
PACKETS_SUFFIX = "_packets"
# The output packet number n in an object's key: {table}/{table}_packet_{n}_processed_{ts}.parquet
PACKET_NUMBER_PATTERN = "_packet_([0-9]+)_processed_[^/]*$"
TIME_COMMENT = (
    "microseconds since midnight (Parquet TIME(MICROS), which Athena reads as bigint); "
    "the view {view} gives it as time(6)"
)

_DECIMAL = re.compile(r"^decimal128\((\d+), (\d+)\)$")
_SCALAR_TYPES = {
    # Arrow type (as the Parquet schema prints it) -> (Glue/Hive type, Trino type)
    "int32": ("int", "integer"),
    "date32[day]": ("date", "date"),
    "time64[us]": ("bigint", "time(6)"),
    "string": ("string", "varchar"),
    "bool": ("boolean", "boolean"),
}


@dataclass(frozen=True)
class Column:
    """An output column as its Parquet carries it (`arrow`: the Arrow type's text)."""

    name: str
    arrow: str

    @property
    def is_time(self) -> bool:
        return self.arrow == "time64[us]"

    def _types(self) -> tuple[str, str]:
        decimal = _DECIMAL.match(self.arrow)
        if decimal:
            return (f"decimal({decimal[1]},{decimal[2]})",) * 2
        if self.arrow not in _SCALAR_TYPES:
            raise ValueError(f"{self.name}: no Glue type for the Arrow type {self.arrow}")
        return _SCALAR_TYPES[self.arrow]

    @property
    def glue_type(self) -> str:
        """The Glue (Hive DDL) type of the raw table's column."""
        return self._types()[0]

    @property
    def trino_type(self) -> str:
        """The type the view gives the column (and the warehouse's DDL has)."""
        return self._types()[1]


@dataclass(frozen=True)
class LakeTable:
    """One output table as stored in the lake: its Glue table and its view."""

    name: str  # the warehouse's name, which is the view's
    kind: str  # DIMENSION, FACT or CALENDAR (runtime/tables.py)
    columns: tuple[Column, ...]
    key: str | None  # dimensions and dim_date: the column the loader upserts by

    @property
    def packets_table(self) -> str:
        """The Glue table over the table's prefix: every row of every packet, raw."""
        return self.name + PACKETS_SUFFIX

    def column_comment(self, column: Column) -> str | None:
        return TIME_COMMENT.format(view=self.name) if column.is_time else None

    def view_sql(self) -> str:
        """The view's SELECT, in Trino's dialect, over the Glue table."""
        shown = ",\n    ".join(_as_warehouse(c) for c in self.columns)
        if self.kind == FACT:
            return f"SELECT\n    {shown}\nFROM {self.packets_table}"  # nosec B608 (declared names only)
        names = ",\n        ".join(c.name for c in self.columns)
        # One row per key: the one of the highest packet number (unique per key in a packet).
        return (
            f"SELECT\n    {shown}\nFROM (\n"  # nosec B608 (declared names only)
            f"    SELECT\n        {names},\n"
            f"        row_number() OVER (\n"
            f"            PARTITION BY {self.key}\n"
            f"            ORDER BY CAST(regexp_extract(\"$path\", '{PACKET_NUMBER_PATTERN}', 1) AS bigint) DESC\n"
            f"        ) AS newest_first\n"
            f"    FROM {self.packets_table}\n"
            f") AS packets\nWHERE newest_first = 1"
        )


def _as_warehouse(column: Column) -> str:
    if not column.is_time:
        return column.name
    t = column.name
    # hh:mm:ss.ffffff from the microseconds, by integer division (both operands bigint).
    parts = [
        f"lpad(CAST({t} / 3600000000 AS varchar), 2, '0')",
        "':'",
        f"lpad(CAST({t} / 60000000 % 60 AS varchar), 2, '0')",
        "':'",
        f"lpad(CAST({t} / 1000000 % 60 AS varchar), 2, '0')",
        "'.'",
        f"lpad(CAST({t} % 1000000 AS varchar), 6, '0')",
    ]
    return f"CAST({' || '.join(parts)} AS time(6)) AS {t}"


def presto_view_text(sql: str, *, database: str, columns: tuple[Column, ...]) -> str:
    """A view as Athena stores it in the Glue Data Catalog (the table's ViewOriginalText):
    base64 of Trino's view definition (ConnectorViewDefinition's JSON) in a comment."""
    definition = {
        "originalSql": sql,
        "catalog": ATHENA_CATALOG,
        "schema": database,
        "columns": [{"name": c.name, "type": c.trino_type} for c in columns],
        # Athena engine 3 reads the definition with Trino's JSON codec, which has been
        # seen to refuse one without these two fields ("Invalid JSON bytes"); older
        # readers ignore them. An Athena view reads its Glue table with the querying
        # analyst's own access whatever runAsInvoker says.
        "runAsInvoker": False,
        "path": [],
    }
    encoded = base64.b64encode(json.dumps(definition, separators=(",", ":")).encode()).decode()
    return f"/* Presto View: {encoded} */"


def decode_presto_view(text: str) -> dict:
    """The JSON definition inside a ViewOriginalText (for tests and inspection)."""
    match = re.fullmatch(r"/\* Presto View: ([A-Za-z0-9+/=]+) \*/", text)
    if not match:
        raise ValueError(f"not a Presto view text: {text[:40]!r}")
    return json.loads(base64.b64decode(match[1]))


def lake_tables() -> tuple[LakeTable, ...]:
    """Every output table, in the loader's order, from the declaration (runtime/columns.py:
    pure data, so synth loads nothing of the runtime's data libraries)."""
    return tuple(
        LakeTable(
            name,
            OUTPUTS[name].kind,
            tuple(Column(c.name, c.type) for c in declared.columns),
            declared.key,
        )
        for name, declared in OUTPUT_COLUMNS.items()
    )
