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

import bisect
import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from runtime import drift
from runtime import tables as t
from runtime.errors import UnreadableObjectError
from runtime.validation import Failure, examples

LINE = "__line"  # row → line number in the packet (across its objects, in key order)

# A line longer than this is not a totesys row (they are under 1 KB): the object is
# refused as unreadable rather than parsed.
MAX_LINE_BYTES = 1024 * 1024

# Packets are read, checked and written in blocks of about this many bytes of JSON
# lines, so memory stays flat however large a packet is. Fixed, not tuned at run time:
# a retry must cut the same blocks to write the same bytes.
BLOCK_BYTES = 32 * 1024 * 1024
_FIRST_READ = 256 * 1024

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


@dataclass(frozen=True)
class Block:
    """Whole lines of one object: the unit that is parsed, checked and written at once.

    Line numbers are packet-wide (across blocks and objects, in key order), counting
    every physical line, so a failure can name the line and quarantine its exact text.
    """

    key: str
    data: pa.Buffer  # ends with b"\n"; a view, not a copy, of what was read
    first_line: int
    line_count: int

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and (exclusive) end offsets of every line (off the fast path only)."""
        ends = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == 0x0A).astype(np.int64)
        starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        return starts, ends

    def line(self, n: int) -> bytes:
        starts, ends = self._bounds
        i = n - self.first_line
        return self.data.slice(starts[i], ends[i] - starts[i]).to_pybytes().rstrip(b"\r")

    def lines(self, positions: Iterable[int]) -> list[bytes]:
        return [self.line(int(n)) for n in positions]


@dataclass(frozen=True)
class PacketText:
    """The lines of several blocks, by packet-wide line number."""

    blocks: tuple[Block, ...]

    @property
    def line_count(self) -> int:
        return sum(b.line_count for b in self.blocks)

    def line(self, n: int) -> bytes:
        firsts = [b.first_line for b in self.blocks]
        return self.blocks[bisect.bisect_right(firsts, n) - 1].line(n)

    def lines(self, positions: Iterable[int]) -> list[bytes]:
        return [self.line(int(n)) for n in positions]


@dataclass(frozen=True)
class ParsedPacket:
    rows: pa.Table  # coerced source columns + __line
    text: Block | PacketText  # the source lines, for quarantining rejected rows
    failures: tuple[Failure, ...]  # broken lines and failed coercions, by line number
    unknown_columns: frozenset[str] = frozenset()  # in the source, not declared: ignored


def read_blocks(
    objects: Iterable[tuple[str, BinaryIO]], block_bytes: int = BLOCK_BYTES
) -> Iterator[Block]:
    """The packet's objects, in the order given, as blocks of whole lines."""
    first_line = 0
    for key, stream in objects:
        for data, line_count in _whole_lines(key, stream, block_bytes):
            _check_utf8(key, data)
            yield Block(key, data, first_line, line_count)
            first_line += line_count


def _whole_lines(key: str, stream: BinaryIO, block_bytes: int) -> Iterator[tuple[pa.Buffer, int]]:
    """Blocks of whole lines, each read into its own buffer (no copies of the block).

    Buffers start small and double up to `block_bytes`, so a small object costs a
    small allocation; the cuts depend only on the bytes, so a retry cuts the same.
    """
    if key.endswith(".gz"):
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    carry = b""
    size = min(block_bytes, _FIRST_READ)
    while True:
        data = bytearray(len(carry) + size)
        data[: len(carry)] = carry
        filled = len(carry) + _read_into(key, stream, memoryview(data)[len(carry) :])
        if filled == len(carry):
            break
        cut = data.rfind(b"\n", 0, filled) + 1
        if cut:
            _check_line_lengths(key, data, cut)
            yield pa.py_buffer(data).slice(0, cut), data.count(b"\n", 0, cut)
        carry = bytes(data[cut:filled])
        if len(carry) > MAX_LINE_BYTES:
            raise UnreadableObjectError(key, f"a line longer than the {MAX_LINE_BYTES:,}-byte limit")
        size = min(block_bytes, size * 2)
    if carry:
        yield pa.py_buffer(carry + b"\n"), 1


def _check_line_lengths(key: str, data: bytearray, end: int) -> None:
    """Refuse a line longer than MAX_LINE_BYTES, without scanning every line.

    Any line of MAX_LINE_BYTES or more contains a whole aligned window of half that
    size with no newline in it; only when such a window exists are the lines measured.
    """
    half = MAX_LINE_BYTES // 2
    if all(data.find(b"\n", i, min(i + half, end)) >= 0 for i in range(0, end, half)):
        return
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8, count=end) == 0x0A)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if len(ends) and int((ends - starts).max()) > MAX_LINE_BYTES:
        raise UnreadableObjectError(key, f"a line longer than the {MAX_LINE_BYTES:,}-byte limit")


def _read_into(key: str, stream: BinaryIO, view: memoryview) -> int:
    """Fill `view` from the stream until it is full or the stream ends."""
    total = 0
    while total < len(view):
        try:
            n = stream.readinto(view[total:])
        except ConnectionError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableObjectError(key, f"not a valid gzip file ({exc})") from exc
        if not n:
            break
        total += n
    return total


def _check_utf8(key: str, data: pa.Buffer) -> None:
    """Arrow's vectorized UTF-8 check over the whole block; the slow decode only
    runs to say where the bad byte is."""
    offsets = pa.array([0, data.size], pa.int64()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, data]).validate(full=True)
    except pa.ArrowInvalid:
        raw = data.to_pybytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableObjectError(
                key, f"not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})"
            ) from exc
        raise


def parse_objects(source: t.SourceTable, objects: list[tuple[str, bytes]]) -> ParsedPacket:
    """Whole objects in memory → one parsed packet (small packets and tests)."""
    blocks = read_blocks((key, io.BytesIO(body)) for key, body in objects)
    return concat(source, [parse_block(source, b) for b in blocks])


def concat(source: t.SourceTable, parts: list[ParsedPacket]) -> ParsedPacket:
    """Several parsed blocks as one packet."""
    if not parts:
        return ParsedPacket(_empty_rows(coerced_schema(source)), PacketText(()), ())
    rows = pa.concat_tables([p.rows for p in parts])
    blocks = tuple(b for p in parts for b in (p.text.blocks if isinstance(p.text, PacketText) else (p.text,)))
    unknown = frozenset().union(*(p.unknown_columns for p in parts))
    return ParsedPacket(rows, PacketText(blocks), tuple(f for p in parts for f in p.failures), unknown)


def _empty_rows(schema: pa.Schema) -> pa.Table:
    return schema.append(pa.field(LINE, pa.int64())).empty_table()


def parse_block(source: t.SourceTable, block: Block, written_at: datetime | None = None) -> ParsedPacket:
    """One block → coerced rows, and the failures of the lines that are not rows.
    `written_at`: the S3 LastModified of the block's object (see coerce)."""
    schema = read_schema(source)
    table = _parse(block.data, schema)
    if table.num_rows == block.line_count:
        # The fast path: every line is a row.
        lines = pa.array(np.arange(block.first_line, block.first_line + block.line_count, dtype=np.int64))
        pieces, broken = [_with_lines(table, schema, lines)], []
    else:
        starts, ends = block._bounds
        candidates = np.flatnonzero(ends - starts > 0)  # empty lines are no rows
        pieces, broken = _bisect(block, schema, candidates, 0, len(candidates))
    unknown = drift.unknown_columns(pieces, schema)
    if unknown:
        pieces = [p.select([*schema.names, LINE]) for p in pieces]
    raw = pa.concat_tables(pieces) if pieces else _empty_rows(schema)
    failures = [_broken_failure(block, broken)] if broken else []
    missing = []
    if any(raw[name].null_count for name in schema.names):
        raw, missing = drift.missing_columns(source, raw, drift.line_texts(block.data, *block._bounds), block.first_line)
    rows, coercion_failures = coerce(source, raw, written_at)
    return ParsedPacket(rows, block, tuple(failures + missing + coercion_failures), frozenset(unknown))


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
    except pa.ArrowInvalid as exc:
        conflict = str(exc)
    try:
        # The lines may still be fine: an unknown column whose type differs from line
        # to line cannot be inferred, and must not break the rows. Read without it.
        table = _read_json(data, schema, "ignore")
    except pa.ArrowInvalid as exc:
        return _Failed(str(exc))
    # Name the unknown columns for the report (their values are ignored anyway): the
    # one pyarrow names, and those of the first line, which alone cannot conflict.
    names = {drift.conflicting_column(conflict)}
    try:
        end = memoryview(data)[: MAX_LINE_BYTES + 2].tobytes().find(b"\n") + 1
        first = _read_json(data.slice(0, end), schema, "infer")
        names.update(first.column_names)
    except pa.ArrowInvalid:
        pass
    for name in sorted(n for n in names - set(schema.names) if n is not None):
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
    block: Block, schema: pa.Schema, candidates: np.ndarray, lo: int, hi: int
) -> tuple[list[pa.Table], list[tuple[int, str]]]:
    """Parse candidate lines [lo, hi); split in two on failure, down to single lines.
    Returns the parsed tables and (line number, reason) of each broken line."""
    if lo >= hi:
        return [], []
    starts, ends = block._bounds
    first, last = candidates[lo], candidates[hi - 1]
    table = _parse(block.data.slice(starts[first], ends[last] + 1 - starts[first]), schema)
    if table.num_rows == hi - lo:
        lines = pa.array(candidates[lo:hi] + block.first_line)
        return [_with_lines(table, schema, lines)], []
    if hi - lo == 1:
        if table.num_rows == 0:
            return [], []  # a whitespace-only line
        reason = table.reason if isinstance(table, _Failed) else "more than one JSON value on the line"
        return [], [(int(first) + block.first_line, reason)]
    mid = (lo + hi) // 2
    left_tables, left_broken = _bisect(block, schema, candidates, lo, mid)
    right_tables, right_broken = _bisect(block, schema, candidates, mid, hi)
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
