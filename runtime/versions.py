"""The version screen of one packet (or replay) against the fact memory
(runtime/history.py): what is new, a re-send, a change, superseded, or a duplicate
within the packet (docs/design.md#fact-memory, docs/design.md#waits-and-replays).

Pure: tables in, tables out; the memory is read through FactMemory.recall.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runtime.history import (
    HASH,
    LEGACY,
    PACKET,
    ROW_NUMBER,
    SEGMENT_SCHEMA,
    UPDATED,
    VERSION_ID,
    FactMemory,
    newest_per_version,
    row_hashes,
)
from runtime.reading import LINE
from runtime.validation import Failure, examples

_CHANGED = "__changed"
_EXAMPLE_IDS = 20


@dataclass
class HistoryUpdate:
    """What one packet (or replay) did to the memory of its fact source table."""

    table: str
    written: pa.Table  # id, last_updated, hash, packet of every row written or re-sent
    resent: int = 0  # rows skipped: that version was sent before, same content
    resent_ids: tuple = ()  # a few of their ids
    mutated_ids: tuple = ()  # ids of versions written before that came back changed
    mutated: int = 0  # rows written whose version had other content before
    segments_read: int = 0
    superseded: int = 0  # rows skipped: a later packet's content of that version was written
    superseded_by: dict = field(default_factory=dict)  # the superseding packet -> a few ids
    waiting: pa.Table | None = None  # id, last_updated, hash, packet of the rows left waiting (None: none)


@dataclass
class Versions:
    """One row per fact version: across packets (the memory) and within the packet.

    Across packets (docs/design.md#fact-memory, #waits-and-replays): a version whose
    content the memory holds from a later packet than these rows' is superseded
    (skipped: the warehouse never receives older content than it holds); one sent
    before with the same content is a re-send (skipped); with other content it is
    kept, written as the newest truth and reported as a change once it is written. So
    is one whose version an earlier packet sent with other content that waits (or
    waited) for a dimension key: the change is reported when it is written, once
    (the waiting row is then superseded, never written after it).
    Content is what the warehouse holds: the hash is over the columns written
    (`content`: source rows -> output columns), so a column the warehouse never holds
    or a formatting difference is no change. Within the packet: the first row of a
    version is kept; a later identical row is an exact duplicate, written once
    (skipped); a later row that differs is a conflict, rejected. Carried across blocks
    as (version, content hash) of the kept rows, so processing a packet in blocks
    gives the same result as processing it whole.

    A replay offers rows of several source packets, oldest first: `next_packet`
    starts the next one, with what this replay wrote so far remembered on top of the
    memory.
    """

    memory: FactMemory
    content: Callable[[pa.Table], pa.Table] | None = None  # source rows -> columns written
    packet: int = 0  # the source packet the screened rows come from
    _seen: list = field(default_factory=list)  # id, last_updated, __hash of kept rows
    # Hashes of every kept version, sorted: a quick, exact "certainly new" test
    # (different hashes mean different versions); a match is checked exactly.
    _version_hashes: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    _written: list = field(default_factory=list)
    _kept: pa.Table | None = None  # version, line, hash, changed of the last block's kept rows
    _overlay: pa.Table | None = None  # a replay's: versions written by its earlier packets
    _waiting: list = field(default_factory=list)  # versions of the rows left waiting
    _waiting_overlay: pa.Table | None = None  # a replay's: ... by its earlier packets
    _resent: int = 0
    _resent_ids: list = field(default_factory=list)
    _mutated: list = field(default_factory=list)
    _superseded: dict = field(default_factory=dict)  # packet -> [count, ids]

    @property
    def _key(self) -> list[str]:
        return [self.memory.source.key, UPDATED]

    def next_packet(self, packet: int) -> None:
        """Screen the rows of source packet `packet` next (a replay's)."""
        if self._written:
            self._overlay = pa.concat_tables(
                ([self._overlay] if self._overlay is not None else []) + self._written
            ).combine_chunks()
        if self._waiting:
            self._waiting_overlay = pa.concat_tables(
                ([self._waiting_overlay] if self._waiting_overlay is not None else []) + self._waiting
            ).combine_chunks()
        self.packet = packet
        self._seen, self._kept = [], None
        self._version_hashes = np.empty(0, dtype=np.uint64)

    def _hash(self, rows: pa.Table) -> np.ndarray:
        if self.content is None:
            return row_hashes(rows.drop_columns([LINE]))
        return row_hashes(self.content(rows))

    def screen(self, rows: pa.Table) -> tuple[pa.Table, int, list[Failure]]:
        """(rows to keep, how many were skipped as superseded, re-sent or exact
        duplicates, the conflicting rows' failure)."""
        if rows.num_rows == 0:
            return rows, 0, []
        content = self._hash(rows)
        ids = rows[self._key[0]]
        found, remembered, packets, waited = self._recall(ids, rows[UPDATED], content)
        changed = waited  # other content of an earlier packet waits: a change once written
        skipped = 0
        if found.any():
            legacy = found & (packets == LEGACY)
            if legacy.any():
                # Remembered before the hash was over the columns written: compared
                # with the hash it was stored with (over the source columns).
                source_hash = row_hashes(rows.drop_columns([LINE]))
                remembered = np.where(legacy & (source_hash == remembered), content, remembered)
            superseded = found & (packets > self.packet)
            same = found & ~superseded & (remembered == content)
            changed = (found & ~superseded & ~same) | waited
            for packet in np.unique(packets[superseded]).tolist():
                at = superseded & (packets == packet)
                entry = self._superseded.setdefault(int(packet), [0, []])
                entry[0] += int(at.sum())
                entry[1] = (entry[1] + ids.filter(pa.array(at))[:_EXAMPLE_IDS].to_pylist())[:_EXAMPLE_IDS]
            if same.any():
                self._resent += int(same.sum())
                if len(self._resent_ids) < _EXAMPLE_IDS:
                    self._resent_ids += ids.filter(pa.array(same))[:_EXAMPLE_IDS].to_pylist()
                # A re-send is remembered as sent by this packet: a row still waiting
                # from an earlier one is superseded by it.
                resent = rows.filter(pa.array(same))
                self._written.append(self._versions(resent[self._key[0]], resent[UPDATED], content[same]))
            gone = superseded | same
            skipped = int(gone.sum())
            if gone.all():
                return rows.filter(pa.array(~gone)), skipped, []
            rows, content, changed = rows.filter(pa.array(~gone)), content[~gone], changed[~gone]
        kept, duplicates, conflicts = self._within_packet(rows, content, changed)
        return kept, duplicates + skipped, conflicts

    def _recall(self, ids, updated, content: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(found, hash, packet) of the newest content written or re-sent of each
        version, and whether an earlier packet left other content of it waiting."""
        (found, hashes, packets), (waits, waited, waited_packets) = self.memory.recall_with_waits(ids, updated)
        other = waits & (waited_packets < self.packet) & (waited != content)
        for overlay in (self._overlay, self._waiting_overlay):
            if overlay is None or not overlay.num_rows:
                continue
            query = pa.table({VERSION_ID: ids.cast(pa.int32()), UPDATED: updated.cast(pa.timestamp("us")),
                              ROW_NUMBER: pa.array(np.arange(len(ids), dtype=np.int64))})
            matched = query.join(newest_per_version(overlay), [VERSION_ID, UPDATED], join_type="inner",
                                 use_threads=False)
            if not matched.num_rows:
                continue
            at = matched[ROW_NUMBER].to_numpy()
            if overlay is self._waiting_overlay:
                other[at] |= matched[HASH].to_numpy() != content[at]
                continue
            found, hashes, packets = found.copy(), hashes.copy(), packets.copy()
            found[at] = True
            hashes[at] = matched[HASH].to_numpy()
            packets[at] = matched[PACKET].to_numpy()
        return found, hashes, packets, other

    def _versions(self, ids, updated, hashes: np.ndarray) -> pa.Table:
        return pa.table({VERSION_ID: ids.cast(pa.int32()), UPDATED: updated.cast(pa.timestamp("us")),
                         HASH: pa.array(hashes, pa.uint64()),
                         PACKET: pa.array(np.full(len(hashes), self.packet, dtype=np.int64))})

    def written(self, valid: pa.Table, waiting: np.ndarray | None = None) -> None:
        """Remember the rows of the last screened block that were written, and the
        lines of it left `waiting`. Written rows are fact rows: their version and hash
        are those of the kept source rows of the same lines (in line order, so a
        binary search finds them). A written row whose version had other content is
        the change reported (once: here)."""
        kept = self._kept
        if waiting is not None and len(waiting) and kept is not None:
            left = kept.filter(pa.array(np.isin(kept[LINE].to_numpy(), waiting)))
            self._waiting.append(self._versions(left.column(0), left[UPDATED], left[HASH].to_numpy()))
        if not valid.num_rows:
            return
        # Usually every kept row is written: then they are shared, not copied.
        at = np.searchsorted(kept[LINE].to_numpy(), valid[LINE].to_numpy())
        rows = kept if len(at) == kept.num_rows else kept.take(pa.array(at))
        self._written.append(self._versions(rows.column(0), rows[UPDATED], rows[HASH].to_numpy()))
        changed = rows[_CHANGED]
        if pc.any(changed).as_py():
            self._mutated.append(rows.column(0).filter(changed).combine_chunks().cast(pa.int32()))

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
            superseded=sum(c for c, _ in self._superseded.values()),
            superseded_by={p: tuple(ids) for p, (_, ids) in sorted(self._superseded.items())},
            waiting=pa.concat_tables(self._waiting) if sum(t.num_rows for t in self._waiting) else None,
        )

    # -- within the packet ------------------------------------------------------------

    def _within_packet(
        self, rows: pa.Table, content: np.ndarray, changed: np.ndarray
    ) -> tuple[pa.Table, int, list[Failure]]:
        key = self._key
        block = rows.select(key + [LINE]).append_column(HASH, pa.array(content, pa.uint64()))
        block = block.append_column(_CHANGED, pa.array(changed, pa.bool_()))
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
        self._kept = kept_versions.select(key + [LINE, HASH, _CHANGED])
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
