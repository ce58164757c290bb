"""Types coerced once, here, where raw rows come in (docs/design.md#line-screen,
"values a warehouse cannot hold"): how pyarrow reads each column kind, and the
vectorized checks and casts to the analysts' types; a value that fails its column
rejects its row with a reason, never a silent null.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runtime import tables as t
from runtime.blocks import LINE
from runtime.validation import Failure, examples

# How pyarrow reads each column kind. Dates are read as text and checked after. An int
# is read as a double, so integral floats (`2.0`, as some exports write ids) parse, and
# a fraction or an out-of-range value is a value that fails its column, not a broken
# line. A decimal is read wide (JSON numbers and decimal strings both parse) and
# narrowed to numeric(10,2) only when exact; precision + scale stay within 38 digits,
# because pyarrow does not check the rescale of an exponent (`1e30` read as
# decimal128(38, 18) silently wraps around 128 bits).
_READ_TYPES = {
    t.INT: pa.float64(),
    t.TEXT: pa.string(),
    t.TIMESTAMP: pa.timestamp("us"),
    t.DATE: pa.string(),
    t.DECIMAL: pa.decimal128(20, 18),
    t.BOOL: pa.bool_(),
}
# The types every later stage sees (the analysts' DDL types).
COERCED_TYPES = {
    t.INT: pa.int32(),
    t.TEXT: pa.string(),
    t.TIMESTAMP: pa.timestamp("us"),
    t.DATE: pa.date32(),
    t.DECIMAL: pa.decimal128(10, 2),
    t.BOOL: pa.bool_(),
}
_INT32 = (-(2**31), 2**31 - 1)
# What Python (and so every key and report) can represent: years 1 to 9999. An offset
# can carry a parsed time out of it (0001-01-01T00:00:00+01:00 is year 0 in UTC).
_TIMESTAMPS = (datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))
_DATES = (date(1, 1, 1), date(9999, 12, 31))
# A row's own timestamps may run this far ahead of the S3 LastModified of the object
# that carries it (clocks differ); beyond, the row claims to come from the future and
# would win its key over every later correction.
WRITTEN_TOLERANCE = timedelta(minutes=5)


def read_schema(source: t.SourceTable) -> pa.Schema:
    return pa.schema([(name, _READ_TYPES[kind]) for name, kind in source.columns])


def coerced_schema(source: t.SourceTable) -> pa.Schema:
    return pa.schema([(name, COERCED_TYPES[kind]) for name, kind in source.columns])


def coerce(
    source: t.SourceTable, rows: pa.Table, written_at: datetime | None = None
) -> tuple[pa.Table, list[Failure]]:
    """Read types → the DDL types, vectorized. Rows that cannot be represented fail
    and are left out of the result; every other row comes through unchanged.

    `written_at` is when the object carrying the rows was written (S3 LastModified):
    a row's own timestamps may not be later, give or take WRITTEN_TOLERANCE.
    """
    failures: list[Failure] = []
    columns = []
    rejected = pa.array(np.zeros(rows.num_rows, dtype=bool))
    latest = _latest_allowed(written_at)
    for name, kind in source.columns:
        raw = rows[name]
        col, checks = _convert(kind, raw)
        if name in (source.key, "last_updated"):
            # Keeping the latest row per key needs both.
            checks.append((pc.is_null(raw), "not null (the row's identity and version)"))
        if kind == t.TIMESTAMP and latest is not None:
            checks.append(
                (
                    pc.greater(col, latest),
                    f"not later than its object was written (S3 LastModified) + {_minutes(WRITTEN_TOLERANCE)}",
                )
            )
        for bad, check in checks:
            bad = pc.fill_null(bad, False)
            if pc.any(bad).as_py():
                failures.append(
                    Failure(
                        column=name,
                        check=check,
                        lines=rows[LINE].filter(bad).to_numpy(),
                        examples=examples(raw.filter(bad)),
                    )
                )
                rejected = pc.or_(rejected, bad)
        columns.append(col)
    schema = coerced_schema(source).append(pa.field(LINE, pa.int64()))
    coerced = pa.Table.from_arrays(columns + [rows[LINE]], schema=schema)
    return coerced.filter(pc.invert(rejected)), failures


def _latest_allowed(written_at: datetime | None) -> pa.Scalar | None:
    if written_at is None:
        return None
    if written_at.tzinfo is not None:  # S3 gives aware UTC times; rows are naive UTC
        written_at = written_at.astimezone(timezone.utc).replace(tzinfo=None)
    return pa.scalar(min(written_at + WRITTEN_TOLERANCE, _TIMESTAMPS[1]), pa.timestamp("us"))


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} minutes"


def _outside(col: pa.ChunkedArray, bounds: tuple, arrow_type: pa.DataType) -> pa.ChunkedArray:
    low, high = (pa.scalar(b, arrow_type) for b in bounds)
    return pc.or_(pc.less(col, low), pc.greater(col, high))


def _convert(kind: str, col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, list]:
    """One column to its DDL type; values that do not fit become null and are flagged."""
    if kind == t.TIMESTAMP:
        bad = _outside(col, _TIMESTAMPS, col.type)
        return col, [(bad, "a timestamp in years 0001-9999 (UTC)")]
    if kind in (t.INT, t.DATE, t.DECIMAL):
        try:
            # A safe cast fails if any value does not fit (a fraction, out of range, not
            # a date): then find which, below.
            cast = pc.cast(col, COERCED_TYPES[kind])
            if kind != t.DATE:
                return cast, []
            if not pc.any(_outside(cast, _DATES, pa.date32())).as_py():
                return cast, []
        except pa.ArrowInvalid:
            pass
    if kind == t.INT:
        whole = pc.equal(pc.floor(col), col)
        bad = pc.or_(pc.invert(whole), _outside(col, _INT32, col.type))
        return pc.cast(pc.if_else(pc.fill_null(bad, False), None, col), pa.int32()), [
            (bad, "a whole number that fits a 32-bit int")
        ]
    if kind == t.DATE:
        parsed = pc.cast(pc.strptime(col, "%Y-%m-%d", "s", error_is_null=True), pa.date32())
        # strptime normalises 2022-02-30 to March 2nd: a round trip catches it.
        same = pc.fill_null(pc.equal(pc.strftime(parsed, "%Y-%m-%d"), col), False)
        bad = pc.or_(
            pc.and_(pc.is_valid(col), pc.invert(same)),
            pc.fill_null(_outside(parsed, _DATES, pa.date32()), False),
        )
        return pc.if_else(bad, None, parsed), [(bad, "an ISO date (YYYY-MM-DD) in years 0001-9999")]
    if kind == t.DECIMAL:
        # Widened first: rounding 99.995 gives 100.00, one digit more than read.
        col = pc.cast(col, pa.decimal128(38, 18))
        cents = pc.round(col, 2)
        bad = pc.or_(
            pc.not_equal(cents, col),
            pc.greater_equal(pc.abs(col), pa.scalar(10**8, pa.decimal128(38, 18))),
        )
        narrowed = pc.cast(pc.if_else(pc.fill_null(bad, False), None, cents), COERCED_TYPES[kind])
        return narrowed, [(bad, "numeric(10,2): at most 8 integer and 2 decimal digits")]
    return col, []
