"""A 64-bit hash of each row's content (runtime/history.py, docs/design.md#fact-memory):
what tells a re-send from a change of a fact version, vectorized over Arrow buffers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def row_hashes(table: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row's content, vectorized over the columns' buffers.

    Tells an exact re-send or duplicate from a changed row of the same version. Reads
    fixed-width columns (ints, dates, timestamps, decimals) as words, booleans as
    bytes, and text byte by byte with its length, so any fact table's columns hash.
    """
    h = np.full(table.num_rows, 0x9E3779B97F4A7C15, dtype=np.uint64)
    for column in table.itercolumns():
        for words in _words(column.combine_chunks()):
            h = _mix(h ^ words)
    return h


def _words(arr: pa.Array) -> list[np.ndarray]:
    if pa.types.is_boolean(arr.type):
        arr = pc.cast(arr, pa.uint8())
    if pa.types.is_string(arr.type) or pa.types.is_binary(arr.type) or pa.types.is_large_string(arr.type):
        words = [_text_hashes(arr)]
    else:
        width = arr.type.byte_width
        raw = np.frombuffer(arr.buffers()[1], dtype=np.uint8)[arr.offset * width : (arr.offset + len(arr)) * width]
        if width == 16:
            pairs = raw.view("<u8").reshape(-1, 2)
            words = [pairs[:, 0], pairs[:, 1]]
        else:
            words = [raw.view(f"<u{width}").astype(np.uint64)]
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    # A null's buffer slot holds anything: hash it as a fixed marker instead.
    return [np.where(nulls, np.uint64(0xA5A5A5A5A5A5A5A5), w) for w in words]


def _text_hashes(arr: pa.Array) -> np.ndarray:
    """Per value: the length, and the sum of each byte mixed with its position."""
    large = pa.types.is_large_string(arr.type)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if large else np.int32)[arr.offset : arr.offset + len(arr) + 1]
    offsets = offsets.astype(np.int64)
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, dtype=np.uint8)
    start, end = offsets[0], offsets[-1]
    lengths = np.diff(offsets).astype(np.uint64)
    if end == start:
        return _mix(lengths)
    body = raw[start:end].astype(np.uint64)
    starts = offsets[:-1] - start
    owner = np.repeat(np.arange(len(arr)), np.diff(offsets))
    position = np.arange(end - start, dtype=np.int64) - starts[owner]
    mixed = _mix(body | (position.astype(np.uint64) << np.uint64(8)))
    sums = np.zeros(len(arr), dtype=np.uint64)
    filled = lengths > 0
    # Summed per value; empty values own no bytes, so each sum runs to the next filled one.
    sums[filled] = np.add.reduceat(mixed, starts[filled])
    with np.errstate(over="ignore"):
        return _mix(sums ^ (lengths * np.uint64(0x9E3779B97F4A7C15)))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit affects every output bit."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
