"""Lazy pandera validation, the split into valid and quarantined rows, and the report.

A failure names a column, a check and the source lines of the rows that failed it.
The same shape serves every kind of failure (a broken line, a value that does not fit
its type, a dangling reference, a pandera check), so the quarantine file, the metrics
and the one-line validation report are built the same way for all of them.

(Over 300 lines: the failure shape, the pandera bridge, the report and the
quarantine format are the four uses of that one shape.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc

from runtime.errors import LineAccountingError

LINE = "__line"  # the source line behind a row (see reading.py)
UPDATED = "__updated"  # the latest last_updated of the source rows behind a row
WAITS_FOR = "_waits_for"  # in a quarantined row: {dimension: the key it waits for}
_EXAMPLES = 3
_EXAMPLE_CHARS = 80

# Deeper nesting than this is a rejected line, never parsed (totesys rows are flat);
# the quarantine decodes a line only when it cannot nest deeper, so no recursive
# decoder ever meets attacker-shaped depth.
MAX_DEPTH = 64
# A quarantined line's raw text is kept up to this many bytes; beyond, it is cut and
# its full length is noted (`_length`).
QUARANTINE_RAW_BYTES = 64 * 1024
# The keys a quarantine line adds to a source row; a row that has one already is kept
# raw, so nothing is overwritten.
OBJECT, LINE_NUMBER, RAW, REASONS, LENGTH = "_object", "_line", "_raw", "_reasons", "_length"
# What a replay adds to a row still waiting (runtime.waits): the source packet it came
# from and the quarantine file it started waiting in.
PACKET_NUMBER, WAITING_IN = "_packet", "_waiting_in"


class SourceLine(bytes):
    """A source line's exact text (no line end), and where it is from: its object key,
    its 1-based line number there, its full length in bytes (more than the text when
    the line was over the limit and only its head was kept)."""

    key: str
    number: int
    length: int

    def __new__(cls, text: bytes, key: str = "", number: int = 0, length: int | None = None) -> SourceLine:
        line = super().__new__(cls, text)
        line.key, line.number = key, number
        line.length = len(text) if length is None else length
        return line


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
    On the report that accounts a source packet's lines (`lines` set), every line has
    one fate: lines = rows_written + rows_rejected + rows_skipped + blank, checked here.
    """

    table: str
    source_packet: str
    rows_in: int
    rows_written: int
    rows_rejected: int
    rows_skipped: int = 0
    failures: tuple[Failure, ...] = field(default_factory=tuple)
    # Of the rejected rows, those quarantined only for a key that has not arrived
    # (docs/design.md#waits-and-replays): they wait, and need no fix at the source.
    rows_waiting: int = 0
    lines: int | None = None  # the source lines this report accounts for
    blank: int = 0  # of them, empty or whitespace only

    def __post_init__(self) -> None:
        if self.lines is not None:
            check_lines(f"{self.table} from {self.source_packet}", self.lines, self.blank,
                        written=self.rows_written, rejected=self.rows_rejected, skipped=self.rows_skipped)

    def to_log(self) -> dict:
        log = {
            "table": self.table,
            "source_packet": self.source_packet,
            "rows_in": self.rows_in,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "rows_skipped": self.rows_skipped,
            "rows_waiting": self.rows_waiting,
        }
        if self.lines is not None:
            log.update(lines=self.lines, lines_blank=self.blank)
        log["failed_checks"] = [f.to_report() for f in self.failures]
        return log


def check_lines(what: str, lines: int, blank: int, **fates: int) -> None:
    """The line rule (docs/design.md#line-screen), checked here and nowhere else: every
    line has exactly one fate, so `lines` = the `fates` counts (written, rejected,
    skipped; or, as the reading has them, rows and broken) + `blank`. Anything else is
    a bug in the processor, raised rather than a line silently lost or counted twice."""
    if lines != sum(fates.values()) + blank:
        counted = " + ".join(f"{n} {fate}" for fate, n in fates.items())
        raise LineAccountingError(f"{what}: {lines} lines but {counted} + {blank} blank")


def quarantine_jsonl(source_lines: callable, failures: Sequence[Failure]) -> bytes:
    """One strict JSON line (RFC 8259: no NaN, no Infinity) per rejected source line.

    A line that decodes, strictly and without loss, to a JSON object is kept as its
    fields plus `_object`, `_line` (1-based within its object) and `_reasons` (and
    `_waits_for`, the keys a dangling reference waits for, on a row that has no other
    reason to be rejected: one that needs a fix at the source waits for nothing).
    Any other line (not
    a JSON object, NaN, duplicate keys, a number a float cannot hold, too deep, too
    long) is kept as `{"_object", "_line", "_raw": its exact text, "_reasons"}`, the
    text cut at QUARANTINE_RAW_BYTES with its full length in `_length`.
    `source_lines(positions)` returns the lines (SourceLine). Runs over rejected rows only.
    """
    reasons: dict[int, list[str]] = {}
    waits: dict[int, dict[str, object]] = {}
    rejected = own_failure_lines(failures)
    for failure in failures:
        per_row = failure.row_reasons or (failure.describe(),) * failure.count
        for line, reason in zip(failure.lines.tolist(), per_row):
            reasons.setdefault(line, [])
            if reason not in reasons[line]:
                reasons[line].append(reason)
        if failure.waits_for:
            for line, key in zip(failure.lines.tolist(), failure.keys):
                if line not in rejected:
                    waits.setdefault(line, {})[failure.waits_for] = key
    positions = sorted(reasons)
    out = []
    for line, text in zip(positions, source_lines(positions)):
        where = {}
        if isinstance(text, SourceLine) and text.number:
            where = {OBJECT: text.key, LINE_NUMBER: text.number}
        extra = {REASONS: reasons[line]}
        if waits.get(line):
            extra[WAITS_FOR] = waits[line]
        row = _strict_object(text)
        encoded = None
        if row is not None:
            try:
                encoded = json.dumps({**row, **where, **extra}, ensure_ascii=False, allow_nan=False).encode("utf-8")
            except (ValueError, UnicodeEncodeError):  # a lone surrogate, say
                encoded = None
        if encoded is None:
            encoded = json.dumps({**where, **_raw(text), **extra}, ensure_ascii=False, allow_nan=False).encode("utf-8")
        out.append(encoded)
    return b"\n".join(out) + b"\n" if out else b""


def own_failure_lines(failures: Sequence[Failure]) -> set[int]:
    """The lines that failed a check of their own (not only a missing key)."""
    return {line for f in failures if not f.waits_for for line in f.lines.tolist()}


def waiting_lines(failures: Sequence[Failure]) -> np.ndarray:
    """The lines that failed only for keys that have not arrived (they wait), sorted."""
    waiting = {line for f in failures if f.waits_for for line in f.lines.tolist()}
    return np.array(sorted(waiting - own_failure_lines(failures)), dtype=np.int64)


def _raw(text: bytes) -> dict:
    length = getattr(text, "length", len(text))
    if length <= QUARANTINE_RAW_BYTES and len(text) == length:
        return {RAW: text.decode("utf-8", "replace")}
    # Cut on a character boundary: a partial character at the cut is dropped.
    return {RAW: bytes(text[:QUARANTINE_RAW_BYTES]).decode("utf-8", "ignore"), LENGTH: length}


_RESERVED = frozenset({OBJECT, LINE_NUMBER, RAW, REASONS, LENGTH, WAITS_FOR, PACKET_NUMBER, WAITING_IN})


class _NotKeptExactly(ValueError):
    pass


def _strict_object(text: bytes) -> dict | None:
    """The line as a dict, when it is a strict JSON object that survives a round trip
    unchanged; else None. Never recursive on deep input: a line with more brackets than
    MAX_DEPTH, or longer than QUARANTINE_RAW_BYTES, is not decoded at all."""
    if len(text) > QUARANTINE_RAW_BYTES or getattr(text, "length", len(text)) != len(text):
        return None
    if text.count(b"{") + text.count(b"[") > MAX_DEPTH:
        return None
    try:
        row = json.loads(
            text.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_not_json,
            parse_float=_exact_float,
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(row, dict) or _RESERVED & row.keys():
        return None
    return row


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    row = dict(pairs)
    if len(row) != len(pairs):
        raise _NotKeptExactly("duplicate keys")
    return row


def _not_json(constant: str) -> float:
    raise _NotKeptExactly(f"{constant} is not JSON")


def _exact_float(text: str) -> float:
    value = float(text)
    if Decimal(repr(value)) != Decimal(text):  # 1e999, or more digits than a float holds
        raise _NotKeptExactly(f"{text} does not survive as a float")
    return value
