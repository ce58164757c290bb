"""JSON lines → Arrow, with the types coerced once, here, and every line given a fate.

A line is what ends at a line feed (a CR right before it belongs to the line end; any
other CR is JSON whitespace). Every line of every object is either a row, blank (empty
or whitespace only: counted, not an error), or a broken line, set aside with its reason
(docs/design.md#line-screen); the counts are checked here.

Before pyarrow sees a block, the vectorized screen (runtime.screen) sets aside every
line it must not see: pyarrow 26's `read_json` with an explicit schema crashes the
process on a line that is JSON `null` (apache/arrow#47409), and reads `null` or several
values on one line as rows of their own. So only lines that start with `{` and end
with `}`, nested at most MAX_DEPTH deep, holding one JSON value, within the line limit,
reach the parser (their whitespace CRs read as spaces). pyarrow rejects a whole block when one of those is still broken (not
JSON, a string where a number belongs, a duplicate key, ...), so on failure the block is
bisected until each broken line stands alone: the good lines keep the fast path, each
broken line is quarantined with pyarrow's reason, and nothing else about the packet
changes.

Every parsed row keeps `__line`, its line number within the packet (0-based, across
its objects in key order: the row's identity downstream); a quarantined line is named
by its object and its 1-based line number within that object.

The boundary by concern: runtime.blocks (the units), runtime.framing (objects → whole
lines), runtime.screen (what the parser must never see), this module (the parse and
the bisection of a broken block), runtime.coerce (types coerced once), runtime.drift.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from runtime import drift
from runtime import tables as t
from runtime.blocks import LINE, Block, PacketText, ParsedPacket
from runtime.coerce import COERCED_TYPES, WRITTEN_TOLERANCE, coerce, coerced_schema, read_schema
from runtime.framing import BLOCK_BYTES, MAX_OBJECT_BYTES, read_blocks
from runtime.screen import MAX_LINE_BYTES, screen
from runtime.validation import Failure, check_lines

# What callers read from here: the parse, and the boundary's units and limits.
__all__ = [
    "BLOCK_BYTES",
    "COERCED_TYPES",
    "LINE",
    "MAX_LINE_BYTES",
    "MAX_OBJECT_BYTES",
    "WRITTEN_TOLERANCE",
    "Block",
    "PacketText",
    "ParsedPacket",
    "coerce",
    "coerced_schema",
    "concat",
    "parse_block",
    "parse_objects",
    "read_blocks",
    "read_schema",
]


def parse_objects(source: t.SourceTable, objects: list[tuple[str, bytes]], block_bytes: int = BLOCK_BYTES) -> ParsedPacket:
    """Whole objects in memory → one parsed packet (small packets and tests)."""
    blocks = read_blocks(((key, io.BytesIO(body)) for key, body in objects), block_bytes)
    return concat(source, [parse_block(source, b) for b in blocks])


def concat(source: t.SourceTable, parts: list[ParsedPacket]) -> ParsedPacket:
    """Several parsed blocks as one packet."""
    if not parts:
        return ParsedPacket(_empty_rows(coerced_schema(source)), PacketText(()), ())
    rows = pa.concat_tables([p.rows for p in parts])
    blocks = tuple(b for p in parts for b in (p.text.blocks if isinstance(p.text, PacketText) else (p.text,)))
    return ParsedPacket(
        rows,
        PacketText(blocks),
        tuple(f for p in parts for f in p.failures),
        unknown_columns=frozenset().union(*(p.unknown_columns for p in parts)),
        lines=sum(p.lines for p in parts),
        blank=sum(p.blank for p in parts),
    )


def _empty_rows(schema: pa.Schema) -> pa.Table:
    return schema.append(pa.field(LINE, pa.int64())).empty_table()


# -- parsing -----------------------------------------------------------------------


def parse_block(source: t.SourceTable, block: Block, written_at: datetime | None = None) -> ParsedPacket:
    """One block → coerced rows, and the failures of the lines that are not rows.
    `written_at`: the S3 LastModified of the block's object (see coerce)."""
    schema = read_schema(source)
    screened = screen(block)
    starts, ends = block.bounds
    candidates = screened.candidates
    if screened.whole:
        # The parser reads the block as it is (blank lines give no row).
        data, c_starts, c_ends = block.data, starts[candidates], ends[candidates]
    else:
        # Only the candidate lines, copied together: the parser never sees the rest,
        # and reads their whitespace CRs as the spaces they are.
        keep = np.zeros(block.line_count, dtype=bool)
        keep[candidates] = True
        text = np.frombuffer(block.data, dtype=np.uint8)
        if len(screened.whitespace):
            text = text.copy()
            text[screened.whitespace] = 0x20
        compact = text[np.repeat(keep, ends - starts + 1)]
        data = pa.py_buffer(compact)
        c_length = (ends - starts)[candidates]
        c_ends = np.cumsum(c_length + 1) - 1
        c_starts = c_ends - c_length
    lines = candidates + block.first_line
    pieces: list[pa.Table] = []
    broken: list[tuple[int, str]] = []
    if len(candidates):
        table = _parse(data, schema)
        if table.num_rows == len(candidates):
            # The fast path: every candidate line is a row.
            pieces = [_with_lines(table, schema, pa.array(lines))]
        else:
            pieces, broken = _bisect(data, c_starts, c_ends, lines, schema, 0, len(candidates))
    broken = sorted(broken + [(i + block.first_line, reason) for i, reason in screened.rejected])
    unknown = drift.unknown_columns(pieces, schema)
    if unknown:
        pieces = [p.select([*schema.names, LINE]) for p in pieces]
    raw = pa.concat_tables(pieces) if pieces else _empty_rows(schema)
    check_lines(f"{block.key} from line {block.object_line + 1}", block.line_count, screened.blank,
                rows=raw.num_rows, broken=len(broken))
    failures = [_broken_failure(block, broken)] if broken else []
    missing = []
    if any(raw[name].null_count for name in schema.names):
        raw, missing = drift.missing_columns(source, raw, drift.line_texts(block.data, *block.bounds), block.first_line)
    rows, coercion_failures = coerce(source, raw, written_at)
    return ParsedPacket(
        rows,
        block,
        tuple(failures + missing + coercion_failures),
        unknown_columns=frozenset(unknown),
        lines=block.line_count,
        blank=screened.blank,
    )


class _Failed:
    """A parse that failed, with pyarrow's reason (not a table)."""

    num_rows = -1

    def __init__(self, message: str) -> None:
        message = message.replace("JSON parse error: ", "")
        self.reason = "not a valid row: " + message.split(" in row ")[0]


def _parse(data: pa.Buffer, schema: pa.Schema) -> pa.Table | _Failed:
    try:
        # Unknown columns come through (typed by inference), to be reported as drift.
        return _read_json(data, schema, "infer")
    except pa.ArrowInvalid:
        pass  # perhaps an unknown column whose type changes: read without them
    try:
        # The lines may still be fine: an unknown column whose type differs from line
        # to line cannot be inferred, and must not break the rows. Read without it.
        table = _read_json(data, schema, "ignore")
    except pa.ArrowInvalid as exc:
        return _Failed(str(exc))
    # Name every unknown column for the report (their values are ignored anyway).
    names = drift.unknown_names(data, schema, lambda piece: _read_json(piece, schema, "infer"))
    for name in sorted(names):
        table = table.append_column(name, pa.nulls(table.num_rows))
    return table


def _read_json(data: pa.Buffer, schema: pa.Schema, unexpected: str) -> pa.Table:
    return pj.read_json(
        pa.BufferReader(data),
        # Blocks of this size parse in parallel; a longer line cannot parse.
        read_options=pj.ReadOptions(block_size=MAX_LINE_BYTES + 1, use_threads=True),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected),
    )


def _with_lines(table: pa.Table, schema: pa.Schema, lines: pa.Array) -> pa.Table:
    # Unknown columns are kept until parse_block has named them; one the source calls
    # `__line` too must not be taken for ours.
    if LINE in table.column_names:
        table = table.rename_columns([f"{n} (a source column)" if n == LINE else n for n in table.column_names])
    return table.append_column(LINE, lines)


def _bisect(
    data: pa.Buffer,
    starts: np.ndarray,
    ends: np.ndarray,
    lines: np.ndarray,
    schema: pa.Schema,
    lo: int,
    hi: int,
) -> tuple[list[pa.Table], list[tuple[int, str]]]:
    """Parse candidate lines [lo, hi) of `data` (bounds `starts`/`ends`, packet line
    numbers `lines`); split in two on failure, down to single lines.
    Returns the parsed tables and (line number, reason) of each broken line."""
    if lo >= hi:
        return [], []
    table = _parse(data.slice(int(starts[lo]), int(ends[hi - 1] + 1 - starts[lo])), schema)
    if table.num_rows == hi - lo:
        return [_with_lines(table, schema, pa.array(lines[lo:hi]))], []
    if hi - lo == 1:
        reason = table.reason if isinstance(table, _Failed) else "several JSON values on one line"
        return [], [(int(lines[lo]), reason)]
    mid = (lo + hi) // 2
    left_tables, left_broken = _bisect(data, starts, ends, lines, schema, lo, mid)
    right_tables, right_broken = _bisect(data, starts, ends, lines, schema, mid, hi)
    return left_tables + right_tables, left_broken + right_broken


def _broken_failure(block: Block, broken: list[tuple[int, str]]) -> Failure:
    lines = np.array([line for line, _ in broken], dtype=np.int64)
    return Failure(
        column="*",
        check="parseable JSON object of the declared types",
        lines=lines,
        examples=tuple(block.line(int(n))[:80].decode("utf-8", "replace") for n in lines[:3]),
        row_reasons=tuple(reason for _, reason in broken),
    )
