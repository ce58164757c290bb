"""The fact memory: every fact version written, across packets, per fact source table.

Facts are history: every version (id, last_updated) of an order is a row. A version
written once must not be written again when a later packet re-sends it unchanged (an
ingestion re-sending its boundary rows), and a version that comes back with other
content (the source changed a row without touching last_updated) is written as the
newest truth and reported (docs/design.md#fact-memory).

Why it is shaped like this: the memory grows without bound (10 million versions is a
few years of orders), so no packet may read or rewrite all of it.

- It is a list of immutable **segments** (Parquet: id, last_updated, a 64-bit hash of
  the columns the warehouse holds of the row, and the source packet that sent that
  content last), one per fact output packet, named in a small **manifest** with each
  segment's last_updated range. The manifest of fact output packet n is the memory
  once n is written; the processed table's `produced` id names the current one, so a
  crash before the id moves leaves the previous memory in force and a retry
  recomputes the same outputs. A packet that writes no fact but re-sends versions
  leaves a manifest of its own (`..._manifest_{n}_then_packet_{k}`), named by its
  commit record: a waiting row of an earlier packet is superseded by those re-sends
  (docs/design.md#waits-and-replays).
- Segments written before the packet column read as LEGACY: their hashes were taken
  over the source columns, and a version found there is compared that way (a format
  read, not migrated: segments are immutable and merge into new ones over time).
- A lookup reads only the segments whose last_updated range holds a looked-up
  version's last_updated. Ingestion packets are time windows, so new versions (later
  than everything remembered) read no segment at all, and re-sent boundary rows read
  the newest one or two. A range is a cheaper "certainly new" test than a per-id
  high-water mark (which would be as large as the number of orders).
- Small segments are merged as they come (the last two, while the newer holds at least
  half the rows of the older and together they stay under MAX_SEGMENT_ROWS), so a
  table has about total/MAX_SEGMENT_ROWS + log2(MAX_SEGMENT_ROWS) segments, each row
  is rewritten about log2(MAX_SEGMENT_ROWS) times in all, and the manifest stays small.

- Rows that wait for a dimension key (docs/design.md#waits-and-replays) are
  remembered too, in segments of their own (`..._waiting.parquet`, merged among
  themselves): not as written, but so that a later packet writing other content of
  that version reports the change once, when it is written.

Content hashes are exact enough: two different rows share a 64-bit hash with
probability 2^-64, so a re-send is told from a change by hash alone.

The screen of one packet against this memory is runtime/versions.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runtime import keys
from runtime.content_hash import row_hashes
from runtime.tables import SourceTable

__all__ = ["FactMemory", "Segment", "advance", "current_manifest", "newest_per_version", "row_hashes"]

UPDATED = "last_updated"
HASH = "__hash"
VERSION_ID = "__id"
_SEGMENT = "__segment"
ROW_NUMBER = "__row"
PACKET = "__packet"  # the source packet whose content the memory holds for a version
# Segments written before the packet column have none: read as LEGACY, their hashes
# taken over the source columns (see Versions.screen).
LEGACY = -1
SEGMENT_SCHEMA = pa.schema(
    [(VERSION_ID, pa.int32()), (UPDATED, pa.timestamp("us")), (HASH, pa.uint64()), (PACKET, pa.int64())]
)
MANIFEST_SCHEMA = pa.schema(
    [("key", pa.string()), ("first", pa.int64()), ("last", pa.int64()), ("rows", pa.int64()),
     ("from_packet", pa.int64()), ("to_packet", pa.int64())]
)
MAX_SEGMENT_ROWS = 1 << 16
SEGMENT_ROW_GROUP = 4096
_CACHE_BYTES = 32 * 1024 * 1024  # segments kept in memory between the blocks of a packet
WAITING_TAG = "_waiting"  # ends the key of a segment of waiting rows' versions

Read = Callable[[str], "bytes | None"]


def _parquet(table: pa.Table) -> bytes:
    # Deterministic bytes: a retry writes exactly what the killed attempt wrote.
    sink = io.BytesIO()
    if table.schema.names == SEGMENT_SCHEMA.names:
        # Sorted ids and times: delta encoding makes them about a byte each; small row
        # groups with statistics let a lookup decode only the groups it needs.
        pq.write_table(
            table, sink, compression="zstd", use_dictionary=False, row_group_size=SEGMENT_ROW_GROUP,
            column_encoding={VERSION_ID: "DELTA_BINARY_PACKED", UPDATED: "DELTA_BINARY_PACKED"},
        )
    else:
        pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _read_table(read: Read, key: str, what: str) -> pa.Table:
    data = read(key)
    if data is None:
        from runtime.errors import CorruptRecordError

        raise CorruptRecordError(f"{what} {key} named by the fact memory does not exist")
    table = pq.read_table(io.BytesIO(data))
    return _with_packet(table, LEGACY) if what == "segment" else table


def _with_packet(table: pa.Table, packet: int) -> pa.Table:
    """A segment table with its packet column (`packet` where it has none)."""
    if PACKET in table.column_names:
        return table
    return table.append_column(PACKET, pa.array(np.full(table.num_rows, packet, dtype=np.int64)))


@dataclass(frozen=True)
class Segment:
    key: str
    first: int  # earliest last_updated in it, microseconds since the epoch
    last: int  # latest last_updated
    rows: int
    from_packet: int  # the fact output packets whose versions it holds
    to_packet: int

    @property
    def waiting(self) -> bool:
        """Whether it holds versions of rows that wait, not of rows written."""
        return self.key.endswith(f"{WAITING_TAG}.parquet")


class FactMemory:
    """The versions written so far for one fact source table (read side)."""

    def __init__(self, source: SourceTable, segments: tuple[Segment, ...] = (), read: Read | None = None) -> None:
        self.source = source
        self.segments = segments
        self._read = read
        self._firsts = np.array([s.first for s in segments], dtype=np.int64)
        self._lasts = np.array([s.last for s in segments], dtype=np.int64)
        self._cache: dict[int, bytes] = {}
        self.segments_read = 0

    @classmethod
    def empty(cls, source: SourceTable) -> FactMemory:
        return cls(source)

    @classmethod
    def load(cls, source: SourceTable, manifest_key: str, read: Read) -> FactMemory:
        return cls(source, manifest_segments(read, manifest_key), read)

    @property
    def versions(self) -> int:
        return sum(s.rows for s in self.segments if not s.waiting)

    def lookup(self, ids: pa.ChunkedArray | pa.Array, updated: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """For each (id, last_updated): whether it was written, and its content hash
        (the newest, if it was written again after a silent change)."""
        found, hashes, _ = self.recall(ids, updated)
        return found, hashes

    def recall(
        self, ids: pa.ChunkedArray | pa.Array, updated: pa.ChunkedArray | pa.Array
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """lookup, and the source packet that sent the remembered content (LEGACY for
        versions remembered before packets were)."""
        return self.recall_with_waits(ids, updated)[0]

    def recall_with_waits(
        self, ids: pa.ChunkedArray | pa.Array, updated: pa.ChunkedArray | pa.Array
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """recall of the rows written, and the same of the rows that waited (the last
        remembered waiting content of each version, and its packet)."""
        n = len(ids)

        def nothing():
            return np.zeros(n, dtype=bool), np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.int64)

        matched = self._matched(ids, updated)
        if matched is None:
            return nothing(), nothing()
        waits = np.array([s.waiting for s in self.segments], dtype=bool)
        in_waiting = waits[matched[_SEGMENT].to_numpy()]
        return (_newest(matched.filter(pa.array(~in_waiting)), nothing()),
                _newest(matched.filter(pa.array(in_waiting)), nothing()))

    def _matched(self, ids, updated) -> pa.Table | None:
        """(row number, hash, packet, segment) of every remembered entry of the versions."""
        n = len(ids)
        if not self.segments or not n:
            return None
        micros = pc.cast(updated, pa.int64()).to_numpy()
        wanted = np.unique(micros)
        lo = np.searchsorted(wanted, self._firsts, "left")
        hi = np.searchsorted(wanted, self._lasts, "right")
        candidates = np.flatnonzero(hi > lo)
        if not len(candidates):
            return None  # every version is later (or earlier) than any remembered
        value_set = pa.array(wanted, pa.int64()).cast(pa.timestamp("us"))
        parts = []
        for i in candidates:
            # One segment at a time, only its row groups that may hold a wanted time,
            # only its rows at a wanted time: memory stays at about one segment.
            near = self._near(int(i), wanted)
            near = near.filter(pc.is_in(near[UPDATED], value_set=value_set))
            parts.append(near.append_column(_SEGMENT, pa.array(np.full(near.num_rows, i, dtype=np.int64))))
        remembered = pa.concat_tables(parts)
        query = pa.table({VERSION_ID: ids.cast(pa.int32()), UPDATED: updated.cast(pa.timestamp("us")),
                          ROW_NUMBER: pa.array(np.arange(n, dtype=np.int64))})
        return query.join(remembered, [VERSION_ID, UPDATED], join_type="inner", use_threads=False)

    def _near(self, i: int, wanted: np.ndarray) -> pa.Table:
        data = self._cache.get(i)
        if data is None:
            key = self.segments[i].key
            data = self._read(key)
            if data is None:
                from runtime.errors import CorruptRecordError

                raise CorruptRecordError(f"segment {key} named by the fact memory does not exist")
            self.segments_read += 1
            if sum(len(d) for d in self._cache.values()) + len(data) <= _CACHE_BYTES:
                self._cache[i] = data
        file = pq.ParquetFile(io.BytesIO(data))
        if PACKET not in file.schema_arrow.names:
            return _with_packet(self._near_groups(file, wanted), LEGACY)
        return self._near_groups(file, wanted)

    @staticmethod
    def _near_groups(file: pq.ParquetFile, wanted: np.ndarray) -> pa.Table:
        column = file.schema_arrow.get_field_index(UPDATED)
        groups = []
        for g in range(file.num_row_groups):
            stats = file.metadata.row_group(g).column(column).statistics
            lo, hi = _micros(stats.min), _micros(stats.max)
            if np.searchsorted(wanted, hi, "right") > np.searchsorted(wanted, lo, "left"):
                groups.append(g)
        if not groups:
            return file.schema_arrow.empty_table()
        return file.read_row_groups(groups)


def _newest(matched: pa.Table, into: tuple[np.ndarray, np.ndarray, np.ndarray]):
    """(found, hash, packet) per looked-up row: the newest segment holding a version has
    its current content."""
    found, hashes, packets = into
    if not matched.num_rows:
        return found, hashes, packets
    matched = matched.sort_by([(ROW_NUMBER, "ascending"), (_SEGMENT, "ascending")])
    rows = matched[ROW_NUMBER].to_numpy()
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = rows[:-1] != rows[1:]
    found[rows[last]] = True
    hashes[rows[last]] = matched[HASH].to_numpy()[last]
    packets[rows[last]] = matched[PACKET].to_numpy()[last]
    return found, hashes, packets


def _micros(value) -> int:
    """A Parquet statistic of a timestamp(us) column, as microseconds."""
    if isinstance(value, int):
        return value
    return int(pa.scalar(value, pa.timestamp("us")).cast(pa.int64()).as_py())


def manifest_segments(read: Read, manifest_key: str | None) -> tuple[Segment, ...]:
    if manifest_key is None:
        return ()
    table = _read_table(read, manifest_key, "manifest")
    return tuple(Segment(**row) for row in table.to_pylist())


def advance(
    read: Read, table: str, previous_manifest: str | None, n: int, written: pa.Table,
    then_packet: int | None = None, waiting: pa.Table | None = None,
) -> list[tuple[str, bytes, int]]:
    """The objects that make the memory after fact output packet `n`, which wrote
    `written` (id, last_updated, hash, packet): its segment (or what it merged into)
    and the manifest, last. Returns (key, bytes, rows) to write, in order.

    `then_packet`: source packet k wrote no fact output after output `n` but re-sent
    versions (skipped as equal) or left rows waiting: they are remembered as sent by k,
    under keys of their own (a waiting row of an earlier packet is superseded by the
    re-sends). `waiting`: the versions of rows that wait, in segments of their own."""
    segments = list(manifest_segments(read, previous_manifest))
    fresh: dict[str, pa.Table] = {}
    tag = "" if then_packet is None else f"_then_packet_{then_packet}"
    kept = [s for s in segments if not s.waiting]
    if written.num_rows:
        kept = _appended(read, table, kept, newest_per_version(_with_packet(written, 0)), n, tag, fresh)
    waits = [s for s in segments if s.waiting]
    if waiting is not None and waiting.num_rows:
        waits = _appended(read, table, waits, newest_per_version(waiting), n, tag + WAITING_TAG, fresh)
    segments = kept + waits
    objects = [(key, _parquet(rows), rows.num_rows) for key, rows in fresh.items()]
    manifest = pa.Table.from_pylist([s.__dict__ for s in segments], schema=MANIFEST_SCHEMA)
    key = keys.history_manifest_key(table, n) if then_packet is None else keys.history_then_key(table, n, then_packet)
    objects.append((key, _parquet(manifest), len(segments)))
    return objects


def _appended(
    read: Read, table: str, segments: list[Segment], new: pa.Table, n: int, tag: str, fresh: dict[str, pa.Table]
) -> list[Segment]:
    """`segments` with the segment of `new` appended, the last ones merged; the
    segments to write are put in `fresh`."""
    segments = [*segments, _describe(table, new, n, n, tag)]
    fresh[segments[-1].key] = new
    while len(segments) >= 2:
        older, newer = segments[-2], segments[-1]
        if older.rows + newer.rows > MAX_SEGMENT_ROWS or 2 * newer.rows < older.rows:
            break
        older_rows = fresh.pop(older.key, None)
        if older_rows is None:
            older_rows = _read_table(read, older.key, "segment")
        merged = _merged(older_rows, fresh.pop(newer.key))
        segments[-2:] = [_describe(table, merged, older.from_packet, newer.to_packet, tag)]
        fresh[segments[-1].key] = merged
    return segments


def current_manifest(table: str, produced: int, base: str | None, last_packet_memory: str | None) -> str | None:
    """The memory now: the one after fact output `produced` (`base`), unless the last
    packet of `table` remembered re-sends after that output (a manifest of its own)."""
    then = keys.parse_history_then_key(last_packet_memory or "")
    if then is not None and then[0] == table and then[1] == produced:
        return last_packet_memory
    return base


def _describe(table: str, rows: pa.Table, from_packet: int, to_packet: int, tag: str = "") -> Segment:
    micros = pc.cast(rows[UPDATED], pa.int64())
    key = keys.history_segment_key(table, from_packet, to_packet)
    return Segment(
        key.removesuffix(".parquet") + tag + ".parquet" if tag else key,
        pc.min(micros).as_py(), pc.max(micros).as_py(), rows.num_rows, from_packet, to_packet,
    )


def newest_per_version(rows: pa.Table) -> pa.Table:
    """By (last_updated, id), one row per version (the last one given).

    The sort is stable (a version's rows stay in the order given) and works on indices
    and the two key columns only, the rows being taken once, at the end: a packet's
    versions are not copied three times over (docs/design.md#performance)."""
    rows = rows.select(SEGMENT_SCHEMA.names).cast(SEGMENT_SCHEMA)
    order = pc.sort_indices(rows, sort_keys=[(UPDATED, "ascending"), (VERSION_ID, "ascending")])
    ids = rows[VERSION_ID].take(order).to_numpy()
    micros = pc.cast(rows[UPDATED].take(order), pa.int64()).to_numpy()
    last = np.ones(len(ids), dtype=bool)
    last[:-1] = (ids[:-1] != ids[1:]) | (micros[:-1] != micros[1:])
    del ids, micros
    return rows.take(order if last.all() else order.filter(pa.array(last))).combine_chunks()


def _merged(older: pa.Table, newer: pa.Table) -> pa.Table:
    return newest_per_version(pa.concat_tables([older.cast(SEGMENT_SCHEMA), newer.cast(SEGMENT_SCHEMA)]))
