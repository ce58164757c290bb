"""Lazy pandera validation, the split into valid and quarantined rows, and the report.

A failure names a column, a check and the source lines of the rows that failed it.
The same shape serves every kind of failure (a broken line, a value that does not fit
its type, a dangling reference, a pandera check), so the quarantine file, the metrics
and the one-line validation report are built the same way for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc

LINE = "__line"  # the source line behind a row (see reading.py)
UPDATED = "__updated"  # the latest last_updated of the source rows behind a row
WAITS_FOR = "_waits_for"  # in a quarantined row: {dimension: the key it waits for}
_EXAMPLES = 3
_EXAMPLE_CHARS = 80


@dataclass(frozen=True)
class Failure:
    """One check that some rows failed."""

    column: str
    check: str
    lines: np.ndarray  # source line numbers of the failing rows
    examples: tuple[str, ...]
    # Per-line reasons, when they say more than the check (pyarrow's parse errors).
    row_reasons: tuple[str, ...] | None = None
    # For a dangling reference: the dimension the row waits for. Such a row may pass
    # once that dimension arrives (a replay re-offers it); others never will.
    waits_for: str | None = None
    keys: tuple | None = None  # with waits_for: the missing key of each failing row

    @property
    def count(self) -> int:
        return len(self.lines)

    def describe(self) -> str:
        return self.check if self.column == "*" else f"{self.column}: {self.check}"

    def to_report(self) -> dict:
        return {
            "column": self.column,
            "check": self.check,
            "count": self.count,
            "examples": list(self.examples),
        }


def examples(values: pa.Array | pa.ChunkedArray) -> tuple[str, ...]:
    """A few failing values for the report, short, as text."""
    values = values[:_EXAMPLES]
    if pa.types.is_temporal(values.type):
        # Arrow formats any timestamp; Python's datetime stops at years 1-9999.
        values = pc.cast(values, pa.string())
    return tuple("null" if v is None else str(v)[:_EXAMPLE_CHARS] for v in values.to_pylist())


# Text a warehouse column cannot hold. PostgreSQL refuses U+0000 in text (the whole
# load fails); NOT NULL text that is empty or only whitespace is a missing value in
# disguise. Whitespace as Python's str.isspace counts it, in RE2 syntax (Arrow's regex).
_WHITESPACE = r"\t\n\x{0B}\f\r\x{1C}-\x{1F}\x{85}\p{Z}"
NO_NUL = pdv.Check(
    lambda s: ~s.str.contains("\x00", regex=False),
    error="no U+0000 character (PostgreSQL text cannot hold it)",
)
NOT_BLANK = pdv.Check(
    lambda s: s.str.contains(f"[^{_WHITESPACE}]", regex=True),
    error="not empty or only whitespace (a NOT NULL text)",
)


def column(arrow_type: pa.DataType, *checks: pdv.Check, nullable: bool = False, **kw) -> pdv.Column:
    """A pandera column of an Arrow-backed dtype: the exact DDL type, no coercion.
    Text columns also get the checks every warehouse text must pass."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        checks = (*checks, NO_NUL) if nullable else (*checks, NO_NUL, NOT_BLANK)
    return pdv.Column(pd.ArrowDtype(arrow_type), list(checks), nullable=nullable, **kw)


def arrow_schema(schema: pdv.DataFrameSchema) -> pa.Schema:
    """The Parquet schema an output table is written with, derived from its pandera schema."""
    return pa.schema(
        [
            pa.field(name, col.dtype.type.pyarrow_dtype, nullable=col.nullable)
            for name, col in schema.columns.items()
        ]
    )


def referential(candidate: pa.Table, column: str, known: pa.Array, what: str) -> Failure | None:
    """Rows whose `column` is not among the `known` keys (a dangling foreign key)."""
    bad = pc.invert(pc.fill_null(pc.is_in(candidate[column], value_set=known), False))
    if not pc.any(bad).as_py():
        return None
    return Failure(
        column=column,
        check=f"refers to a known {what}",
        lines=candidate[LINE].filter(bad).to_numpy(),
        examples=examples(candidate[column].filter(bad)),
        waits_for=what,
        keys=tuple(candidate[column].filter(bad).to_pylist()),
    )


def validate(
    schema: pdv.DataFrameSchema, candidate: pa.Table
) -> tuple[pa.Table, list[Failure]]:
    """Validate lazily; return the valid rows (with the DDL schema) and every failure.

    `candidate` holds the schema's columns plus the __line/__updated bookkeeping
    columns, which the valid rows keep so the caller can date and trace them.
    """
    names = list(schema.columns)
    frame = candidate.select(names).to_pandas(types_mapper=pd.ArrowDtype)
    try:
        schema.validate(frame, lazy=True)
        return candidate, []
    except pdv.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    if cases["index"].isna().any():
        # A column-level failure (wrong dtype, missing column) is a bug in a builder,
        # not bad data: stop rather than quarantine every row.
        raise TypeError(
            "output frame does not match its schema: "
            + cases[cases["index"].isna()][["column", "check"]].to_string(index=False)
        )
    # A check across columns (dim_transaction's "exactly one order") is reported by
    # pandera once per column of the row: it is one reason, about the row.
    wide = (cases["schema_context"] == "DataFrameSchema").to_numpy()
    if wide.any():
        cases = cases.assign(column=np.where(wide, "*", cases["column"].astype(object)))
        cases = cases.drop_duplicates(["column", "check", "index"])
    lines = candidate[LINE].to_numpy()
    failures = []
    for (col, check), group in cases.groupby(["column", "check"], sort=True, dropna=False):
        positions = np.unique(group["index"].to_numpy(dtype=np.int64))
        failures.append(
            Failure(
                column=str(col),
                check=str(check),
                lines=lines[positions],
                examples=tuple(str(v)[:_EXAMPLE_CHARS] for v in group["failure_case"][:_EXAMPLES]),
            )
        )
    bad = np.zeros(candidate.num_rows, dtype=bool)
    bad[np.unique(cases["index"].to_numpy(dtype=np.int64))] = True
    return candidate.filter(pa.array(~bad)), failures


def without_lines(candidate: pa.Table, failures: Iterable[Failure]) -> pa.Table:
    """The rows of `candidate` whose source line failed none of `failures`."""
    failed = [f.lines for f in failures]
    if not failed:
        return candidate
    bad = pc.is_in(candidate[LINE], value_set=pa.array(np.concatenate(failed)))
    return candidate.filter(pc.invert(bad))


@dataclass(frozen=True)
class TableReport:
    """What happened to one output table's rows for one source packet.

    rows_in = rows_written + rows_rejected + rows_skipped, where skipped rows are
    exact duplicates or rows older than the state (nothing to emit), never errors.
    """

    table: str
    source_packet: str
    rows_in: int
    rows_written: int
    rows_rejected: int
    rows_skipped: int = 0
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    def to_log(self) -> dict:
        return {
            "table": self.table,
            "source_packet": self.source_packet,
            "rows_in": self.rows_in,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "rows_skipped": self.rows_skipped,
            "failed_checks": [f.to_report() for f in self.failures],
        }


def quarantine_jsonl(source_lines: callable, failures: Sequence[Failure]) -> bytes:
    """One JSON line per rejected source line: its source row plus `_reasons` (and
    `_waits_for`, the dimensions a dangling reference waits for).

    `source_lines(positions)` returns the exact source text of those lines. A line that
    is not a JSON object is kept as `{"_raw": text}`. Runs over rejected rows only.
    """
    reasons: dict[int, list[str]] = {}
    waits: dict[int, dict[str, object]] = {}
    for failure in failures:
        per_row = failure.row_reasons or (failure.describe(),) * failure.count
        for line, reason in zip(failure.lines.tolist(), per_row):
            reasons.setdefault(line, [])
            if reason not in reasons[line]:
                reasons[line].append(reason)
        if failure.waits_for:
            for line, key in zip(failure.lines.tolist(), failure.keys):
                waits.setdefault(line, {})[failure.waits_for] = key
    positions = sorted(reasons)
    out = []
    for line, text in zip(positions, source_lines(positions)):
        decoded = text.decode("utf-8", "replace")
        try:
            row = json.loads(decoded)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            row = {"_raw": decoded}
        row["_reasons"] = reasons[line]
        if waits.get(line):
            row[WAITS_FOR] = waits[line]
        out.append(json.dumps(row, ensure_ascii=False, sort_keys=False))
    return ("\n".join(out) + "\n").encode("utf-8") if out else b""
