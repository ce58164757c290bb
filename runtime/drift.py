"""Schema drift: source rows whose columns differ from the declaration
(docs/design.md#validation).

Three kinds, found per block as it is parsed, cheaply:
- a column the declaration does not know: ignored for the output (it never breaks a
  row), only named in the report;
- a declared column missing from a row: that row is rejected (a null would otherwise
  pass for a nullable column). Only rows whose value came out null are looked at, so
  the usual block costs a null count per column;
- a declared column whose JSON type changed (text where an int is declared): the
  parser already rejects those rows; their reasons name the column, counted here.
The pipeline logs one WARNING per packet and counts a `SchemaDrift` metric.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runtime import tables as t
from runtime.validation import LINE, Failure

MISSING_CHECK = "present in the row (a declared column is missing: schema drift)"
# pyarrow names the column whose JSON type differs from the schema or the earlier lines.
_CONFLICT = re.compile(r"Column\(/([^/)]*)")


class PacketDrift:
    """What one packet's blocks showed; empty (falsy) when the columns are as declared."""

    def __init__(self, source: t.SourceTable) -> None:
        self._declared = {name for name, _ in source.columns}
        self.unknown: set[str] = set()
        self.missing: Counter[str] = Counter()
        self.retyped: Counter[str] = Counter()

    def __bool__(self) -> bool:
        return bool(self.unknown or self.missing or self.retyped)

    def add(self, unknown: Iterable[str], failures: Iterable[Failure]) -> None:
        self.unknown.update(unknown)
        for failure in failures:
            if failure.check == MISSING_CHECK:
                self.missing[failure.column] += failure.count
            for reason in failure.row_reasons or ():
                name = conflicting_column(reason)
                if name in self._declared:
                    self.retyped[name] += 1

    def to_log(self) -> dict:
        return {
            "unknown_columns": sorted(self.unknown),
            "missing_columns": dict(sorted(self.missing.items())),
            "retyped_columns": dict(sorted(self.retyped.items())),
        }


def conflicting_column(message: str) -> str | None:
    """The top-level column a pyarrow type-conflict message names, if any."""
    match = _CONFLICT.search(message)
    return match.group(1) if match else None


def unknown_names(data: pa.Buffer, declared: pa.Schema, infer: Callable[[pa.Buffer], pa.Table]) -> set[str]:
    """Every column the JSON lines of `data` hold that `declared` does not, whatever
    the types of its values and on however few lines it appears.

    Only asked when `infer` (pyarrow, inferring the undeclared columns) failed on the
    lines: an undeclared column whose type changes from line to line cannot be
    inferred, and pyarrow names only the first such column. So the lines are split in
    halves until each part infers; a single line that still cannot (a list of mixed
    types) is read by json for its keys. The cost follows the number of type changes,
    not of lines, and the usual block never comes here.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    if not len(ends) or ends[-1] != len(raw) - 1:
        ends = np.append(ends, len(raw) - 1)
    starts = np.concatenate([[0], ends[:-1] + 1])
    names: set[str] = set()
    parts = [(0, len(ends))]
    while parts:
        lo, hi = parts.pop()
        first = int(starts[lo])
        piece = data.slice(first, int(ends[hi - 1]) + 1 - first)
        try:
            names.update(infer(piece).column_names)
        except pa.ArrowInvalid as exc:
            if hi - lo > 1:
                parts += [(lo, (lo + hi) // 2), ((lo + hi) // 2, hi)]
                continue
            names.add(conflicting_column(str(exc)) or "")
            names.update(_keys(piece.to_pybytes()))
    return {name for name in names if name and name not in declared.names}


def _keys(line: bytes) -> list[str]:
    """The keys of one JSON object line (already screened: bounded length and depth)."""
    try:
        value = json.loads(line)
    except ValueError:
        return []
    return [key for key in value] if isinstance(value, dict) else []


def unknown_columns(pieces: Iterable[pa.Table], declared: pa.Schema) -> set[str]:
    known = set(declared.names) | {LINE}
    return {name for piece in pieces for name in piece.schema.names if name not in known}


def missing_columns(
    source: t.SourceTable, raw: pa.Table, block_lines: pa.Array, first_line: int
) -> tuple[pa.Table, list[Failure]]:
    """Rows a declared column is absent from: (the other rows, their failures).

    `block_lines` holds the block's lines as text, so a null is told from an absence
    by looking for the key in the lines whose value is null, and only in those.
    """
    failures = []
    for name, _ in source.columns:
        column = raw[name]
        if not column.null_count:
            continue
        at = pc.indices_nonzero(pc.is_null(column).combine_chunks())
        lines = pc.take(raw[LINE], at)
        text = pc.take(block_lines, pc.subtract(lines, first_line))
        # A key follows `{` or `,`; an escaped quote in a string cannot start one.
        present = pc.match_substring_regex(text, rf'(^|[{{,])\s*"{re.escape(name)}"\s*:')
        absent = lines.filter(pc.invert(present))
        if len(absent):
            failures.append(Failure(name, MISSING_CHECK, absent.to_numpy(), ("(absent)",)))
    if not failures:
        return raw, []
    gone = pa.array(np.unique(np.concatenate([f.lines for f in failures])))
    return raw.filter(pc.invert(pc.is_in(raw[LINE], value_set=gone))), failures


def line_texts(data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The block's lines as one string array over the block's own buffer (no copy)."""
    offsets = np.append(starts, ends[-1] + 1 if len(ends) else 0).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), data)
