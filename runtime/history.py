"""The fact memory: every fact version written, across packets, per fact source table.

Facts are history: every version (id, last_updated) of an order is a row. A version
written once must not be written again when a later packet re-sends it unchanged (an
ingestion re-sending its boundary rows), and a version that comes back with other
content (the source changed a row without touching last_updated) is written as the
newest truth and reported (DESIGN §7b).

Why it is shaped like this: the memory grows without bound (10 million versions is a
few years of orders), so no packet may read or rewrite all of it.

- It is a list of immutable **segments** (Parquet: id, last_updated, a 64-bit hash of
  the row's content), one per fact output packet, named in a small **manifest** with
  each segment's last_updated range. The manifest of fact output packet n is the
  memory once n is written; the processed table's `produced` id names the current one,
  so a crash before the id moves leaves the previous memory in force and a retry
  recomputes the same outputs.
- A lookup reads only the segments whose last_updated range holds a looked-up
  version's last_updated. Ingestion packets are time windows, so new versions (later
  than everything remembered) read no segment at all, and re-sent boundary rows read
  the newest one or two. A range is a cheaper "certainly new" test than a per-id
  high-water mark (which would be as large as the number of orders).
- Small segments are merged as they come (the last two, while the newer holds at least
  half the rows of the older and together they stay under MAX_SEGMENT_ROWS), so a
  table has about total/MAX_SEGMENT_ROWS + log2(MAX_SEGMENT_ROWS) segments, each row
  is rewritten about log2(MAX_SEGMENT_ROWS) times in all, and the manifest stays small.

Content hashes are exact enough: two different rows share a 64-bit hash with
probability 2^-64, so a re-send is told from a change by hash alone.

(Over 300 lines: the segment store and the version screen that reads it share the
content hash and the (id, last_updated) layout; apart, each would restate them.)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runtime import keys
from runtime.reading import LINE
from runtime.tables import SourceTable
from runtime.validation import Failure, examples

UPDATED = "last_updated"
HASH = "__hash"
_ID = "__id"
_SEGMENT = "__segment"
_ROW = "__row"
SEGMENT_SCHEMA = pa.schema([(_ID, pa.int32()), (UPDATED, pa.timestamp("us")), (HASH, pa.uint64())])
MANIFEST_SCHEMA = pa.schema(
    [("key", pa.string()), ("first", pa.int64()), ("last", pa.int64()), ("rows", pa.int64()),
     ("from_packet", pa.int64()), ("to_packet", pa.int64())]
)
MAX_SEGMENT_ROWS = 1 << 16
SEGMENT_ROW_GROUP = 4096
_CACHE_BYTES = 32 * 1024 * 1024  # segments kept in memory between the blocks of a packet
_EXAMPLE_IDS = 20

Read = Callable[[str], "bytes | None"]


def _parquet(table: pa.Table) -> bytes:
    # Deterministic bytes: a retry writes exactly what the killed attempt wrote.
    sink = io.BytesIO()
    if table.schema.names == SEGMENT_SCHEMA.names:
        # Sorted ids and times: delta encoding makes them about a byte each; small row
        # groups with statistics let a lookup decode only the groups it needs.
        pq.write_table(
            table, sink, compression="zstd", use_dictionary=False, row_group_size=SEGMENT_ROW_GROUP,
            column_encoding={_ID: "DELTA_BINARY_PACKED", UPDATED: "DELTA_BINARY_PACKED"},
        )
    else:
        pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _read_table(read: Read, key: str, what: str) -> pa.Table:
    data = read(key)
    if data is None:
        from runtime.errors import CorruptRecordError

        raise CorruptRecordError(f"{what} {key} named by the fact memory does not exist")
    return pq.read_table(io.BytesIO(data))


@dataclass(frozen=True)
class Segment:
    key: str
    first: int  # earliest last_updated in it, microseconds since the epoch
    last: int  # latest last_updated
    rows: int
    from_packet: int  # the fact output packets whose versions it holds
    to_packet: int


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
        return sum(s.rows for s in self.segments)

    def lookup(self, ids: pa.ChunkedArray | pa.Array, updated: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """For each (id, last_updated): whether it was written, and its content hash
        (the newest, if it was written again after a silent change)."""
        n = len(ids)
        found, hashes = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.uint64)
        if not self.segments or not n:
            return found, hashes
        micros = pc.cast(updated, pa.int64()).to_numpy()
        wanted = np.unique(micros)
        lo = np.searchsorted(wanted, self._firsts, "left")
        hi = np.searchsorted(wanted, self._lasts, "right")
        candidates = np.flatnonzero(hi > lo)
        if not len(candidates):
            return found, hashes  # every version is later (or earlier) than any remembered
        value_set = pa.array(wanted, pa.int64()).cast(pa.timestamp("us"))
        parts = []
        for i in candidates:
            # One segment at a time, only its row groups that may hold a wanted time,
            # only its rows at a wanted time: memory stays at about one segment.
            near = self._near(int(i), wanted)
            near = near.filter(pc.is_in(near[UPDATED], value_set=value_set))
            parts.append(near.append_column(_SEGMENT, pa.array(np.full(near.num_rows, i, dtype=np.int64))))
        remembered = pa.concat_tables(parts)
        query = pa.table({_ID: ids.cast(pa.int32()), UPDATED: updated.cast(pa.timestamp("us")),
                          _ROW: pa.array(np.arange(n, dtype=np.int64))})
        matched = query.join(remembered, [_ID, UPDATED], join_type="inner", use_threads=False)
        if not matched.num_rows:
            return found, hashes
        # The newest segment holding a version has its current content.
        matched = matched.sort_by([(_ROW, "ascending"), (_SEGMENT, "ascending")])
        rows = matched[_ROW].to_numpy()
        last = np.ones(len(rows), dtype=bool)
        last[:-1] = rows[:-1] != rows[1:]
        found[rows[last]] = True
        hashes[rows[last]] = matched[HASH].to_numpy()[last]
        return found, hashes

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
        column = file.schema_arrow.get_field_index(UPDATED)
        groups = []
        for g in range(file.num_row_groups):
            stats = file.metadata.row_group(g).column(column).statistics
            lo, hi = _micros(stats.min), _micros(stats.max)
            if np.searchsorted(wanted, hi, "right") > np.searchsorted(wanted, lo, "left"):
                groups.append(g)
        return file.read_row_groups(groups) if groups else SEGMENT_SCHEMA.empty_table()


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
    read: Read, table: str, previous_manifest: str | None, n: int, written: pa.Table
) -> list[tuple[str, bytes, int]]:
    """The objects that make the memory after fact output packet `n`, which wrote
    `written` (id, last_updated, hash): its segment (or what it merged into) and the
    manifest, last. Returns (key, bytes, rows) to write, in order."""
    segments = list(manifest_segments(read, previous_manifest))
    fresh: dict[str, pa.Table] = {}
    new = _sorted_unique(written)
    segments.append(_describe(table, new, n, n))
    fresh[segments[-1].key] = new
    while len(segments) >= 2:
        older, newer = segments[-2], segments[-1]
        if older.rows + newer.rows > MAX_SEGMENT_ROWS or 2 * newer.rows < older.rows:
            break
        older_rows = fresh.pop(older.key, None)
        if older_rows is None:
            older_rows = _read_table(read, older.key, "segment")
        merged = _merged(older_rows, fresh.pop(newer.key))
        segments[-2:] = [_describe(table, merged, older.from_packet, newer.to_packet)]
        fresh[segments[-1].key] = merged
    objects = [(key, _parquet(rows), rows.num_rows) for key, rows in fresh.items()]
    manifest = pa.Table.from_pylist([s.__dict__ for s in segments], schema=MANIFEST_SCHEMA)
    objects.append((keys.history_manifest_key(table, n), _parquet(manifest), len(segments)))
    return objects


def _describe(table: str, rows: pa.Table, from_packet: int, to_packet: int) -> Segment:
    micros = pc.cast(rows[UPDATED], pa.int64())
    return Segment(
        keys.history_segment_key(table, from_packet, to_packet),
        pc.min(micros).as_py(), pc.max(micros).as_py(), rows.num_rows, from_packet, to_packet,
    )


def _sorted_unique(rows: pa.Table) -> pa.Table:
    """By (last_updated, id), one row per version (the last one given).

    The sort is stable (a version's rows stay in the order given) and works on indices
    and the two key columns only, the rows being taken once, at the end: a packet's
    versions are not copied three times over (docs/design.md#performance)."""
    rows = rows.select(SEGMENT_SCHEMA.names).cast(SEGMENT_SCHEMA)
    order = pc.sort_indices(rows, sort_keys=[(UPDATED, "ascending"), (_ID, "ascending")])
    ids = rows[_ID].take(order).to_numpy()
    micros = pc.cast(rows[UPDATED].take(order), pa.int64()).to_numpy()
    last = np.ones(len(ids), dtype=bool)
    last[:-1] = (ids[:-1] != ids[1:]) | (micros[:-1] != micros[1:])
    del ids, micros
    return rows.take(order if last.all() else order.filter(pa.array(last))).combine_chunks()


def _merged(older: pa.Table, newer: pa.Table) -> pa.Table:
    return _sorted_unique(pa.concat_tables([older.cast(SEGMENT_SCHEMA), newer.cast(SEGMENT_SCHEMA)]))


# -- the screen of one packet ----------------------------------------------------------


@dataclass
class HistoryUpdate:
    """What one packet did to the memory of its fact source table."""

    table: str
    written: pa.Table  # id, last_updated, hash of every row written
    resent: int = 0  # rows skipped: that version was written before, same content
    resent_ids: tuple = ()  # a few of their ids
    mutated_ids: tuple = ()  # ids of versions written before that came back changed
    mutated: int = 0  # rows
    segments_read: int = 0


@dataclass
class Versions:
    """One row per fact version: across packets (the memory) and within the packet.

    Across packets: a version already written with the same content is skipped (a
    re-send); with other content it is kept, written as the newest truth and
    reported. Within the packet: the first row of a version is kept; a later identical
    row is an exact duplicate, written once (skipped); a later row that differs is a
    conflict, rejected. Carried across blocks as (version, content hash) of the kept
    rows, so processing a packet in blocks gives the same result as processing it whole.
    """

    memory: FactMemory
    _seen: list = field(default_factory=list)  # id, last_updated, __hash of kept rows
    # Hashes of every kept version, sorted: a quick, exact "certainly new" test
    # (different hashes mean different versions); a match is checked exactly.
    _version_hashes: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    _written: list = field(default_factory=list)
    _kept: pa.Table | None = None  # version, line, hash of the last block's kept rows
    _resent: int = 0
    _resent_ids: list = field(default_factory=list)
    _mutated: list = field(default_factory=list)

    @property
    def _key(self) -> list[str]:
        return [self.memory.source.key, UPDATED]

    def screen(self, rows: pa.Table) -> tuple[pa.Table, int, list[Failure]]:
        """(rows to keep, how many were skipped as already written or exact
        duplicates, the conflicting rows' failure)."""
        if rows.num_rows == 0:
            return rows, 0, []
        content = row_hashes(rows.drop_columns([LINE]))
        resent = 0
        found, remembered = self.memory.lookup(rows[self._key[0]], rows[UPDATED])
        if found.any():
            same = found & (remembered == content)
            changed = found & ~same
            if changed.any():
                self._mutated.append(rows[self._key[0]].filter(pa.array(changed)).combine_chunks())
            if same.any():
                resent = int(same.sum())
                self._resent += resent
                if len(self._resent_ids) < _EXAMPLE_IDS:
                    self._resent_ids += rows[self._key[0]].filter(pa.array(same))[:_EXAMPLE_IDS].to_pylist()
                rows, content = rows.filter(pa.array(~same)), content[~same]
                if rows.num_rows == 0:
                    return rows, resent, []
        kept, duplicates, conflicts = self._within_packet(rows, content)
        return kept, duplicates + resent, conflicts

    def written(self, valid: pa.Table) -> None:
        """Remember the rows of the last screened block that were written. They are
        fact rows: their version and hash are those of the kept source rows of the
        same lines (in line order, so a binary search finds them)."""
        if not valid.num_rows:
            return
        kept = self._kept
        # Usually every kept row is written: then they are shared, not copied.
        at = np.searchsorted(kept[LINE].to_numpy(), valid[LINE].to_numpy())
        rows = kept if len(at) == kept.num_rows else kept.take(pa.array(at))
        self._written.append(pa.table({
            _ID: rows.column(0).cast(pa.int32()), UPDATED: rows[UPDATED], HASH: rows[HASH]}))

    def update(self) -> HistoryUpdate:
        written = pa.concat_tables(self._written) if self._written else SEGMENT_SCHEMA.empty_table()
        mutated = pa.concat_arrays(self._mutated) if self._mutated else pa.array([], pa.int32())
        return HistoryUpdate(
            table=self.memory.source.name,
            written=written,
            resent=self._resent,
            resent_ids=tuple(self._resent_ids[:_EXAMPLE_IDS]),
            mutated_ids=tuple(pc.unique(mutated).to_pylist()),
            mutated=len(mutated),
            segments_read=self.memory.segments_read,
        )

    # -- within the packet ------------------------------------------------------------

    def _within_packet(self, rows: pa.Table, content: np.ndarray) -> tuple[pa.Table, int, list[Failure]]:
        key = self._key
        block = rows.select(key + [LINE]).append_column(HASH, pa.array(content, pa.uint64()))
        versions = np.sort(row_hashes(rows.select(key)))
        repeated = bool(len(versions) > 1 and (versions[1:] == versions[:-1]).any())
        if not repeated and not self._maybe_seen(versions):
            # The common case: every version is new and appears once.
            self._remember(block, versions)
            self._kept = block
            return rows, 0, []
        counts = block.group_by(key, use_threads=False).aggregate([(LINE, "min"), (LINE, "count")])
        return self._screen_slowly(rows, block, counts, self._seen_of(counts.select(key)))

    def _maybe_seen(self, sorted_hashes: np.ndarray) -> bool:
        known = self._version_hashes
        if not len(known):
            return False
        at = np.minimum(np.searchsorted(known, sorted_hashes), len(known) - 1)
        return bool((known[at] == sorted_hashes).any())

    def _remember(self, kept: pa.Table, sorted_hashes: np.ndarray) -> None:
        self._seen.append(kept.select(self._key + [HASH]))
        # Two sorted runs: a stable sort merges them in linear time (in place: no copy).
        merged = np.concatenate([self._version_hashes, sorted_hashes])
        merged.sort(kind="stable")
        self._version_hashes = merged

    def _seen_of(self, versions: pa.Table) -> pa.Table:
        """The (version, hash) of earlier blocks' rows for these versions."""
        if not self._seen:
            return pa.table({self._key[0]: pa.array([], pa.int32()),
                             UPDATED: pa.array([], pa.timestamp("us")),
                             HASH: pa.array([], pa.uint64())})
        # The block's versions are the (small) build side; earlier rows are probed.
        return pa.concat_tables(self._seen).join(versions, self._key, join_type="left semi")

    def _screen_slowly(
        self, rows: pa.Table, block: pa.Table, counts: pa.Table, seen: pa.Table
    ) -> tuple[pa.Table, int, list[Failure]]:
        key = self._key
        first = counts.select(key + [f"{LINE}_min"]).join(
            block.select([LINE, HASH]), f"{LINE}_min", LINE, join_type="inner"
        )
        first = first.rename_columns(key + ["__first_line", "__first_hash"])
        seen = seen.rename_columns(key + ["__seen_hash"])
        first = first.join(seen, key, join_type="left outer")
        screened = block.join(first, key, join_type="inner").sort_by(LINE)
        reference = pc.coalesce(screened["__seen_hash"], screened["__first_hash"])
        differs = pc.not_equal(screened[HASH], reference)
        keep = pc.and_(pc.is_null(screened["__seen_hash"]), pc.equal(screened[LINE], screened["__first_line"]))
        kept_versions = screened.filter(keep)
        self._remember(kept_versions, np.sort(row_hashes(kept_versions.select(key))))
        self._kept = kept_versions.select(key + [LINE, HASH])
        conflicts = []
        if pc.any(differs).as_py():
            conflicts.append(
                Failure(
                    column=key[0],
                    check=f"one row per version ({key[0]}, last_updated): "
                    "a different row for this version came first",
                    lines=screened[LINE].filter(differs).to_numpy(),
                    examples=examples(screened[key[0]].filter(differs)),
                )
            )
        kept = rows.filter(pc.is_in(rows[LINE], value_set=screened[LINE].filter(keep).combine_chunks()))
        duplicates = rows.num_rows - kept.num_rows - (conflicts[0].count if conflicts else 0)
        return kept, duplicates, conflicts


# -- content hashes ---------------------------------------------------------------------


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
