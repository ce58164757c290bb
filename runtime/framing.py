"""Objects → blocks of whole lines (docs/design.md#line-screen): gzip or plain, a BOM
dropped, UTF-8 checked, the object size capped, a line over the limit cut to a block of
its own; line feeds, `{` and the screened bytes found in one pass per cache-sized slice.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from runtime.blocks import SCREENED_BYTES, Block
from runtime.errors import UnreadableObjectError
from runtime.screen import MAX_LINE_BYTES
from runtime.validation import QUARANTINE_RAW_BYTES

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
