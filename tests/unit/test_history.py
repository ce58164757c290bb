"""The fact memory (runtime.history) against a plain dict model of it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import history, keys
from runtime.tables import SOURCES
from tests.support.fakes import MemoryBucket

SOURCE = SOURCES["sales_order"]
T0 = 1_667_000_000_000_000  # microseconds


def written(rows: list[tuple[int, int, int]]) -> pa.Table:
    ids, updated, hashes = zip(*rows) if rows else ((), (), ())
    return pa.table({
        "__id": pa.array(ids, pa.int32()),
        "last_updated": pa.array(np.array(updated, dtype=np.int64) + T0, pa.int64()).cast(pa.timestamp("us")),
        "__hash": pa.array(hashes, pa.uint64()),
    })


def memory_after(bucket: MemoryBucket, n: int) -> history.FactMemory:
    return history.FactMemory.load(SOURCE, keys.history_manifest_key("sales_order", n), bucket.read)


# Packets of versions: ids and times from small ranges, so versions repeat across
# packets (re-sends, silent changes) and time ranges overlap (late packets).
packets = st.lists(
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 40), st.integers(0, 3)), min_size=1, max_size=12),
    min_size=1, max_size=14,
)


@settings(max_examples=60, deadline=None)
@given(packets)
def test_every_version_written_is_remembered_with_its_newest_content(packets_written):
    original = history.MAX_SEGMENT_ROWS
    history.MAX_SEGMENT_ROWS = 16  # small: merges happen all the time
    try:
        bucket, model, previous = MemoryBucket(), {}, None
        for n, rows in enumerate(packets_written, start=1):
            for key, body, _ in history.advance(bucket.read, "sales_order", previous, n, written(rows)):
                bucket.put_if_absent(key, body, {})
            previous = keys.history_manifest_key("sales_order", n)
            for i, t, h in rows:
                model[(i, t)] = h  # the last row of a version in a packet wins, then later packets
            memory = memory_after(bucket, n)
            assert memory.versions >= len(model)  # a changed version may sit in two segments
            probe = sorted(model) + [(31, 5), (1, 41), (2, -1)]  # and some never written
            ids = pa.array([i for i, _ in probe], pa.int32())
            updated = written([(i, t, 0) for i, t in probe])["last_updated"]
            found, hashes = memory.lookup(ids, updated)
            assert found.tolist() == [v in model for v in probe]
            assert [int(h) for h, f in zip(hashes, found) if f] == [model[v] for v in probe if v in model]
            # Merged as they come: few segments, each under the cap.
            assert all(s.rows <= history.MAX_SEGMENT_ROWS for s in memory.segments)
    finally:
        history.MAX_SEGMENT_ROWS = original


def test_new_versions_later_than_everything_remembered_read_no_segment():
    bucket, previous = MemoryBucket(), None
    for n in range(1, 6):
        rows = [(i, n * 100 + i, i) for i in range(50)]
        for key, body, _ in history.advance(bucket.read, "sales_order", previous, n, written(rows)):
            bucket.put_if_absent(key, body, {})
        previous = keys.history_manifest_key("sales_order", n)
    memory = memory_after(bucket, 5)
    newer = written([(i, 1000 + i, 0) for i in range(50)])
    found, _ = memory.lookup(newer["__id"], newer["last_updated"])
    assert not found.any() and memory.segments_read == 0
    boundary = written([(49, 549, 0)])  # a re-sent boundary row: only the newest segment is read
    found, hashes = memory.lookup(boundary["__id"], boundary["last_updated"])
    assert found.tolist() == [True] and hashes.tolist() == [49] and memory.segments_read == 1


def with_packet(table: pa.Table, packet: int) -> pa.Table:
    return table.append_column("__packet", pa.array(np.full(table.num_rows, packet, dtype=np.int64)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(packets.map(lambda p: p[0]), packets.map(lambda p: p[0]), st.booleans()),
                min_size=1, max_size=10))
def test_rows_that_wait_are_remembered_apart_from_the_rows_written(steps):
    """Waiting rows' versions (docs/design.md#waits-and-replays) live in segments of
    their own: a lookup of what was written never sees them, recall_with_waits gives
    the last remembered waiting content of a version and its packet, and written
    segments still merge among themselves."""
    original = history.MAX_SEGMENT_ROWS
    history.MAX_SEGMENT_ROWS = 16
    try:
        bucket, previous, n = MemoryBucket(), None, 0
        model: dict = {}
        waits: dict = {}
        for k, (rows, waiting, writes) in enumerate(steps, start=1):
            # A packet writes an output (then n moves) or only leaves rows waiting.
            rows = rows if writes else []
            n += 1 if writes else 0
            then = None if writes else k
            objects = history.advance(bucket.read, "sales_order", previous, n, with_packet(written(rows), k),
                                      then, with_packet(written(waiting), k))
            for key, body, _ in objects:
                bucket.put_if_absent(key, body, {})
            previous = objects[-1][0]
            model |= {(i, t): h for i, t, h in rows}
            waits |= {(i, t): (h, k) for i, t, h in waiting}
            memory = history.FactMemory.load(SOURCE, previous, bucket.read)
            probe = sorted(set(model) | set(waits)) + [(31, 5)]
            ids = pa.array([i for i, _ in probe], pa.int32())
            updated = written([(i, t, 0) for i, t in probe])["last_updated"]
            (found, hashes, _), (waited, waited_hashes, waited_packets) = memory.recall_with_waits(ids, updated)
            assert found.tolist() == [v in model for v in probe]
            assert [int(h) for h, f in zip(hashes, found) if f] == [model[v] for v in probe if v in model]
            assert waited.tolist() == [v in waits for v in probe]
            assert [(int(h), int(p)) for h, p, w in zip(waited_hashes, waited_packets, waited) if w] == [
                waits[v] for v in probe if v in waits]
            assert memory.versions == sum(s.rows for s in memory.segments if not s.waiting)
            assert all(s.rows <= history.MAX_SEGMENT_ROWS for s in memory.segments)
    finally:
        history.MAX_SEGMENT_ROWS = original
