"""Each output table's Arrow (Parquet) schema and pandera schema, derived from the one
declaration of its columns (runtime/columns.py, docs/design.md#tables): a star module
adds only its checks, never retypes a column."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandera.pandas as pdv
import pyarrow as pa

from runtime.columns import BOOL, DATE, INT32, OUTPUT_COLUMNS, TEXT, TIME
from runtime.validation import column

_TYPES = {INT32: pa.int32(), DATE: pa.date32(), TIME: pa.time64("us"), TEXT: pa.string(), BOOL: pa.bool_()}
_DECIMAL = re.compile(r"decimal128\((\d+), (\d+)\)")


def arrow_type(text: str) -> pa.DataType:
    """The Arrow type a declared type's text names (its own `str`)."""
    decimal = _DECIMAL.fullmatch(text)
    found = pa.decimal128(int(decimal[1]), int(decimal[2])) if decimal else _TYPES.get(text)
    if found is None or str(found) != text:
        raise ValueError(f"no Arrow type prints as {text!r}")
    return found


def arrow_schema(table: str) -> pa.Schema:
    """The Parquet schema `table` is written with."""
    return pa.schema(
        [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in OUTPUT_COLUMNS[table].columns]
    )


def table_schema(
    table: str,
    checks: dict[str, Sequence[pdv.Check]] | None = None,
    frame_checks: Sequence[pdv.Check] = (),
) -> pdv.DataFrameSchema:
    """The pandera schema of `table`: its declared columns (the key unique), strict,
    with the star module's own checks per column (`checks`) and across a row (`frame_checks`)."""
    declared = OUTPUT_COLUMNS[table]
    checks = checks or {}
    unknown = set(checks) - set(declared.names)
    if unknown:
        raise ValueError(f"{table}: checks for undeclared columns {sorted(unknown)}")
    return pdv.DataFrameSchema(
        {
            c.name: column(
                arrow_type(c.type), *checks.get(c.name, ()), nullable=c.nullable, unique=c.name == declared.key
            )
            for c in declared.columns
        },
        checks=list(frame_checks) or None,
        strict=True,
    )
