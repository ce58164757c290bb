"""The units of the line boundary (docs/design.md#line-screen): a Block of whole lines
of one object, the text of several blocks, and a parsed packet. Read by the framing,
the screen, the parser and everything that quarantines a line by its number.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from runtime.validation import Failure, SourceLine

LINE = "__line"  # row → line number in the packet (across its objects, in key order)

# The bytes the line screen asks about (carriage returns, arrays, NaN, Infinity): looked
# for while each slice is in cache, not in further passes over the block.
SCREENED_BYTES = (b"\r", b"[", b"N", b"I")


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
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
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
        starts, ends = self.bounds
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
