"""JSON lines → Arrow, with the types coerced once, here, and broken lines set aside.

The fast path is one pyarrow JSON parse with an explicit schema. pyarrow rejects a
whole block when one line is broken (not JSON, a string where a number belongs, ...),
so on failure the block is bisected until each broken line stands alone: the good
lines keep the fast path, each broken line is quarantined with pyarrow's reason, and
nothing else about the packet changes.

Every parsed row keeps `__line`, its line number within the packet, so a rejected row
is quarantined as the exact source text the ingestion wrote.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from runtime import tables as t
from runtime.errors import UnreadableObjectError
from runtime.validation import Failure, examples

LINE = "__line"  # row → line number in the packet (across its objects, in key order)

# A line longer than this is not a totesys row: the object is refused as unreadable.
MAX_LINE_BYTES = 8 * 1024 * 1024

# How pyarrow reads each column kind. Dates are read as text and checked after; a
# decimal is read wide (JSON numbers and decimal strings both parse) and narrowed to
# numeric(10,2) only when exact.
_READ_TYPES = {
    t.INT: pa.int64(),
    t.TEXT: pa.string(),
    t.TIMESTAMP: pa.timestamp("us"),
    t.DATE: pa.string(),
    t.DECIMAL: pa.decimal128(38, 18),
}
# The types every later stage sees (the analysts' DDL types).
COERCED_TYPES = {
    t.INT: pa.int32(),
    t.TEXT: pa.string(),
    t.TIMESTAMP: pa.timestamp("us"),
    t.DATE: pa.date32(),
    t.DECIMAL: pa.decimal128(10, 2),
}
_INT32 = (-(2**31), 2**31 - 1)


def read_schema(source: t.SourceTable) -> pa.Schema:
    return pa.schema([(name, _READ_TYPES[kind]) for name, kind in source.columns])


def coerced_schema(source: t.SourceTable) -> pa.Schema:
    return pa.schema([(name, COERCED_TYPES[kind]) for name, kind in source.columns])


@dataclass(frozen=True)
class SourceText:
    """The lines of a packet: every object's bytes, split on newlines, in key order."""

    data: bytes
    starts: np.ndarray  # int64 offsets of each non-empty line
    ends: np.ndarray  # exclusive

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]]

    def lines(self, positions: Iterable[int]) -> list[bytes]:
        return [self.line(int(i)) for i in positions]


@dataclass(frozen=True)
class ParsedPacket:
    rows: pa.Table  # coerced source columns + __line
    text: SourceText
    failures: tuple[Failure, ...]  # broken lines and failed coercions, by line number


def decode_object(key: str, body: bytes) -> bytes:
    """The JSON-lines bytes of one ingestion object (.jsonl or .jsonl.gz)."""
    if key.endswith(".gz"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableObjectError(key, f"not a valid gzip file ({exc})") from exc
    try:
        body.decode("utf-8")  # validation only; pyarrow parses the bytes
    except UnicodeDecodeError as exc:
        raise UnreadableObjectError(
            key, f"not UTF-8 text (byte {exc.start}: {body[exc.start:exc.start + 1]!r})"
        ) from exc
    return body


def split_lines(objects: list[tuple[str, bytes]]) -> SourceText:
    """Join the objects' bytes and find the non-empty lines, vectorized."""
    parts = [body if body.endswith(b"\n") or not body else body + b"\n" for _, body in objects]
    data = b"".join(parts)
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 0x0A)
    starts = np.concatenate(([0], newlines[:-1] + 1)) if len(newlines) else np.empty(0, np.int64)
    ends = newlines.astype(np.int64)
    lengths = ends - starts
    if len(lengths) and lengths.max() > MAX_LINE_BYTES:
        at = int(np.argmax(lengths > MAX_LINE_BYTES))
        key = _key_of_offset(objects, parts, int(starts[at]))
        raise UnreadableObjectError(
            key, f"a line of {int(lengths[at]):,} bytes exceeds the {MAX_LINE_BYTES:,}-byte limit"
        )
    keep = lengths > 0
    return SourceText(data, starts[keep].astype(np.int64), ends[keep])


def _key_of_offset(objects: list[tuple[str, bytes]], parts: list[bytes], offset: int) -> str:
    bounds = np.cumsum([len(p) for p in parts])
    return objects[int(np.searchsorted(bounds, offset, side="right"))][0]


def parse_packet(source: t.SourceTable, objects: list[tuple[str, bytes]]) -> ParsedPacket:
    """Decoded objects of one packet → coerced rows, and the failures of the rest."""
    text = split_lines(objects)
    schema = read_schema(source)
    pieces, broken = _parse_range(text, schema, 0, text.line_count)
    rows = pa.concat_tables(pieces) if pieces else schema.append(pa.field(LINE, pa.int64())).empty_table()
    failures = [_broken_failure(text, broken)] if broken else []
    rows, coercion_failures = coerce(source, rows)
    return ParsedPacket(rows, text, tuple(failures + coercion_failures))


def _parse_range(
    text: SourceText, schema: pa.Schema, lo: int, hi: int
) -> tuple[list[pa.Table], list[tuple[int, str]]]:
    """Parse lines [lo, hi); bisect on failure. Returns tables and (line, reason) pairs."""
    if lo >= hi:
        return [], []
    chunk = text.data[text.starts[lo] : text.ends[hi - 1] + 1]
    reason = None
    try:
        table = pj.read_json(
            io.BytesIO(chunk),
            read_options=pj.ReadOptions(block_size=max(1 << 20, len(chunk) + 1), use_threads=True),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid as exc:
        table, reason = None, _short_reason(str(exc))
    if table is not None and table.num_rows == hi - lo:
        lines = pa.array(np.arange(lo, hi, dtype=np.int64))
        return [table.select(schema.names).append_column(LINE, lines)], []
    if hi - lo == 1:
        if table is not None and table.num_rows == 0:
            return [], []  # a whitespace-only line
        return [], [(lo, reason or "more than one JSON value on the line")]
    mid = (lo + hi) // 2
    left_tables, left_broken = _parse_range(text, schema, lo, mid)
    right_tables, right_broken = _parse_range(text, schema, mid, hi)
    return left_tables + right_tables, left_broken + right_broken


def _short_reason(message: str) -> str:
    message = message.replace("JSON parse error: ", "")
    return "not a valid row: " + message.split(" in row ")[0]


def _broken_failure(text: SourceText, broken: list[tuple[int, str]]) -> Failure:
    lines = np.array([line for line, _ in broken], dtype=np.int64)
    reasons = [reason for _, reason in broken]
    return Failure(
        column="*",
        check="parseable JSON object of the declared types",
        lines=lines,
        examples=tuple(text.line(int(i))[:80].decode("utf-8", "replace") for i in lines[:3]),
        row_reasons=tuple(reasons),
    )


def coerce(source: t.SourceTable, rows: pa.Table) -> tuple[pa.Table, list[Failure]]:
    """Read types → the DDL types, vectorized. Rows that cannot be represented fail
    and are left out of the result; every other row comes through unchanged."""
    failures: list[Failure] = []
    columns = []
    rejected = pa.array(np.zeros(rows.num_rows, dtype=bool))
    for name, kind in source.columns:
        raw = rows[name]
        col, checks = _convert(kind, raw)
        if name in (source.key, "last_updated"):
            # Keeping the latest row per key needs both.
            checks.append((pc.is_null(raw), "not null (the row's identity and version)"))
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


def _convert(kind: str, col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, list]:
    """One column to its DDL type; values that do not fit become null and are flagged."""
    if kind == t.INT:
        bad = pc.or_(pc.less(col, _INT32[0]), pc.greater(col, _INT32[1]))
        return pc.cast(pc.if_else(pc.fill_null(bad, False), None, col), pa.int32()), [
            (bad, "fits a 32-bit int")
        ]
    if kind == t.DATE:
        parsed = pc.cast(pc.strptime(col, "%Y-%m-%d", "s", error_is_null=True), pa.date32())
        # strptime normalises 2022-02-30 to March 2nd: a round trip catches it.
        same = pc.fill_null(pc.equal(pc.strftime(parsed, "%Y-%m-%d"), col), False)
        bad = pc.and_(pc.is_valid(col), pc.invert(same))
        return pc.if_else(bad, None, parsed), [(bad, "an ISO date (YYYY-MM-DD)")]
    if kind == t.DECIMAL:
        cents = pc.round(col, 2)
        bad = pc.or_(
            pc.not_equal(cents, col),
            pc.greater_equal(pc.abs(col), pa.scalar(10**8, pa.decimal128(38, 18))),
        )
        narrowed = pc.cast(pc.if_else(pc.fill_null(bad, False), None, cents), COERCED_TYPES[kind])
        return narrowed, [(bad, "numeric(10,2): at most 8 integer and 2 decimal digits")]
    return col, []
