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

(Over 300 lines: the streamed block reader and the coercion of each column kind are
the one boundary where raw rows come in, and a block's line numbers and its coercion
failures must agree; the line screen is runtime/screen.py.)
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
from runtime.errors import LineAccountingError, UnreadableObjectError
from runtime.screen import MAX_LINE_BYTES, screen
from runtime.validation import QUARANTINE_RAW_BYTES, Failure, SourceLine, examples

LINE = "__line"  # row → line number in the packet (across its objects, in key order)

# An object that holds more text than this (decompressed) is unreadable: a gzip bomb
# or a mistake, not a packet this function can process within its timeout.
MAX_OBJECT_BYTES = 4 * 1024**3

# Packets are read, checked and written in blocks of about this many bytes of JSON
# lines, so memory stays flat however large a packet is. Fixed, not tuned at run time:
# a retry must cut the same blocks to write the same bytes.
BLOCK_BYTES = 32 * 1024 * 1024
_FIRST_READ = 256 * 1024
_SKIP_READ = 64 * 1024
_BOM = b"\xef\xbb\xbf"

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


@dataclass(frozen=True, eq=False)
class Block:
    """Whole lines of one object: the unit that is parsed, checked and written at once.

    `first_line` is packet-wide (across blocks and objects, in key order) and
    `object_line` the same line's 0-based number within its object, counting every
    physical line, so a failure can name the line and quarantine its exact text.
    """

    key: str
    data: pa.Buffer  # ends with b"\n"; a view, not a copy, of what was read
    first_line: int
    line_count: int
    object_line: int = 0
    # A block of one line that was over MAX_LINE_BYTES: its full length in bytes
    # (`data` then holds only its first QUARANTINE_RAW_BYTES).
    overlong: int | None = None
    ends: np.ndarray | None = None  # offset of each line's b"\n", when already known
    backing: bytes | bytearray | None = None  # what `data` views, from offset 0 (for find)
    opens: int | None = None  # how many `{` the block holds, when already counted
    # Which of SCREENED_BYTES the block holds, when already looked for.
    present: frozenset[bytes] | None = None

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and (exclusive) end offsets of every line."""
        ends = self.ends
        if ends is None:
            ends = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == 0x0A)
        ends = ends.astype(np.int64, copy=False)
        starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        return starts, ends

    def holds(self, byte: bytes) -> bool:
        """Whether one of SCREENED_BYTES occurs in the block."""
        return byte in self.present if self.present is not None else self.find(byte)

    def find(self, needle: bytes) -> bool:
        """Whether `needle` occurs in the block (memchr speed, no copy when backed)."""
        source = self.backing if self.backing is not None else self.data.to_pybytes()
        return source.find(needle, 0, self.data.size) >= 0

    def count(self, needle: bytes) -> int:
        source = self.backing if self.backing is not None else self.data.to_pybytes()
        return source.count(needle, 0, self.data.size)

    def line(self, n: int) -> SourceLine:
        """Packet line `n`'s exact text (without its line end), naming where it is from."""
        starts, ends = self._bounds
        i = n - self.first_line
        text = self.data.slice(starts[i], ends[i] - starts[i]).to_pybytes()
        if text.endswith(b"\r"):
            text = text[:-1]
        length = self.overlong if self.overlong is not None else len(text)
        return SourceLine(text, self.key, self.object_line + i + 1, length)

    def lines(self, positions: Iterable[int]) -> list[SourceLine]:
        return [self.line(int(n)) for n in positions]


@dataclass(frozen=True)
class PacketText:
    """The lines of several blocks, by packet-wide line number."""

    blocks: tuple[Block, ...]

    @property
    def line_count(self) -> int:
        return sum(b.line_count for b in self.blocks)

    def line(self, n: int) -> SourceLine:
        firsts = [b.first_line for b in self.blocks]
        return self.blocks[bisect.bisect_right(firsts, n) - 1].line(n)

    def lines(self, positions: Iterable[int]) -> list[SourceLine]:
        return [self.line(int(n)) for n in positions]


@dataclass(frozen=True)
class ParsedPacket:
    rows: pa.Table  # coerced source columns + __line
    text: Block | PacketText  # the source lines, for quarantining rejected rows
    failures: tuple[Failure, ...]  # broken lines and failed coercions, by line number
    unknown_columns: frozenset[str] = frozenset()  # in the source, not declared: ignored
    lines: int = 0  # every line read: rows + broken + blank
    blank: int = 0  # empty or whitespace-only lines (no row, not an error)


def read_blocks(
    objects: Iterable[tuple[str, BinaryIO]], block_bytes: int = BLOCK_BYTES
) -> Iterator[Block]:
    """The packet's objects, in the order given, as blocks of whole lines."""
    first_line = 0
    for key, stream in objects:
        object_line = 0
        for backing, size, overlong in _whole_lines(key, stream, block_bytes):
            data = pa.py_buffer(backing).slice(0, size)
            _check_utf8(key, data)
            ends, opens, present = _scan(backing, size)
            yield Block(key, data, first_line, len(ends), object_line, overlong, ends, backing, opens, present)
            first_line += len(ends)
            object_line += len(ends)


_SLICE = 1024 * 1024
# The bytes the line screen asks about (carriage returns, arrays, NaN, Infinity): looked
# for while each slice is in cache, not in further passes over the block.
SCREENED_BYTES = (b"\r", b"[", b"N", b"I")


def _scan(backing: bytes | bytearray, size: int) -> tuple[np.ndarray, int, frozenset[bytes]]:
    """The offsets of every line feed in the first `size` bytes of `backing`, how many
    `{` they hold and which SCREENED_BYTES occur, in one pass a cache-sized slice at a
    time (no block-sized temporary)."""
    buf = np.frombuffer(backing, dtype=np.uint8, count=size)
    parts, opens, present, wanted = [], 0, set(), list(SCREENED_BYTES)
    for i in range(0, size, _SLICE):
        part = buf[i : i + _SLICE]
        parts.append(np.flatnonzero(part == 0x0A) + i)
        opens += int(np.count_nonzero(part == 0x7B))  # `{`
        for byte in list(wanted):
            if backing.find(byte, i, min(i + _SLICE, size)) >= 0:
                present.add(byte)
                wanted.remove(byte)
    return (np.concatenate(parts) if parts else np.empty(0, np.int64)), opens, frozenset(present)


def _whole_lines(
    key: str, stream: BinaryIO, block_bytes: int
) -> Iterator[tuple[bytes | bytearray, int, int | None]]:
    """Blocks of whole lines, each read into its own buffer (no copies of the block):
    (the buffer, how many of its bytes are the block's), with the full length of a line that was over the limit (then a block of its own).

    Buffers start small and double up to `block_bytes`, so a small object costs a
    small allocation; the cuts depend only on the bytes, so a retry cuts the same.
    """
    text = _Text(key, stream)
    carry = b""
    size = min(block_bytes, _FIRST_READ)
    while True:
        data = bytearray(len(carry) + size)
        data[: len(carry)] = carry
        filled = len(carry) + text.read_into(memoryview(data)[len(carry) :])
        if filled == len(carry):
            break
        cut = data.rfind(b"\n", 0, filled) + 1
        if cut:
            yield data, cut, None
        carry = bytes(data[cut:filled])
        if len(carry) > MAX_LINE_BYTES + 1:  # + the CR of a CRLF (the limit counts no line end)
            # Not held whole: skipped to its end, keeping what the quarantine keeps.
            head, length, carry = _skip_line(text, carry)
            yield head + b"\n", len(head) + 1, length
        size = min(block_bytes, size * 2)
    if carry:
        last = carry if carry.endswith(b"\n") else carry + b"\n"
        yield last, len(last), None


def _skip_line(text: _Text, start: bytes) -> tuple[bytes, int, bytes]:
    """An over-long line whose first bytes are `start`: read to its end.
    Returns (its first QUARANTINE_RAW_BYTES, its length without its line end, what
    follows its line end)."""
    head, length, last = start[:QUARANTINE_RAW_BYTES], len(start), start[-1:]
    while True:
        chunk = bytearray(_SKIP_READ)
        n = text.read_into(memoryview(chunk))
        if not n:
            return head, length, b""
        end = chunk.find(b"\n", 0, n)
        if end >= 0:
            length += end
            if (chunk[end - 1 : end] if end else last) == b"\r":  # CRLF: the CR is the line end
                length -= 1
            return head, length, bytes(chunk[end + 1 : n])
        length, last = length + n, chunk[n - 1 : n]


class _Text:
    """An object's text: gunzipped if it is .gz, without a leading byte-order mark,
    refused past MAX_OBJECT_BYTES; read errors are UnreadableObjectError."""

    def __init__(self, key: str, stream: BinaryIO) -> None:
        self.key = key
        self.total = 0
        self._pending = b""
        self._stream = stream
        if key.endswith(".gz"):
            magic = self._read_raw(stream, 2)
            if magic != b"\x1f\x8b":
                what = "0 bytes" if not magic else "no gzip header"
                raise UnreadableObjectError(key, f"not a valid gzip file ({what})")
            self._stream = gzip.GzipFile(fileobj=_Prefixed(magic, stream), mode="rb")
        first = self._read_raw(self._stream, len(_BOM))
        self._pending = first[len(_BOM) :] if first.startswith(_BOM) else first

    def _read_raw(self, stream: BinaryIO, n: int) -> bytes:
        out = b""
        while len(out) < n:
            try:
                part = stream.read(n - len(out))
            except ConnectionError:
                raise
            except (OSError, EOFError, zlib.error) as exc:
                raise UnreadableObjectError(self.key, f"not a valid gzip file ({exc})") from exc
            if not part:
                break
            out += part
        return out

    def read_into(self, view: memoryview) -> int:
        """Fill `view` until it is full or the text ends; returns how much was read."""
        total = 0
        if self._pending:
            total = min(len(view), len(self._pending))
            view[:total] = self._pending[:total]
            self._pending = self._pending[total:]
        while total < len(view):
            try:
                n = self._stream.readinto(view[total:])
            except ConnectionError:
                raise
            except (OSError, EOFError, zlib.error) as exc:
                raise UnreadableObjectError(self.key, f"not a valid gzip file ({exc})") from exc
            if not n:
                break
            total += n
        self.total += total
        if self.total > MAX_OBJECT_BYTES:
            raise UnreadableObjectError(self.key, f"more than the {MAX_OBJECT_BYTES:,}-byte object size cap")
        return total


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read from it put back in front."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix, self._stream = prefix, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


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
    starts, ends = block._bounds
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
    if raw.num_rows + len(broken) + screened.blank != block.line_count:
        raise LineAccountingError(
            f"{block.key}: {block.line_count} lines from line {block.object_line + 1} but "
            f"{raw.num_rows} rows + {len(broken)} broken + {screened.blank} blank"
        )
    failures = [_broken_failure(block, broken)] if broken else []
    missing = []
    if any(raw[name].null_count for name in schema.names):
        raw, missing = drift.missing_columns(source, raw, drift.line_texts(block.data, *block._bounds), block.first_line)
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
