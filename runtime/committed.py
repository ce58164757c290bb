"""The committed state, read through the ports (docs/design.md#commit-steps): the
consumed ids, each dimension source's state snapshot, each fact source's memory, the
late commit records. Only what a commit record names and the SSM ids say is
committed; an attempt that did not finish is invisible here, so a retry computes the
same bytes. Used by the pipeline and by the operators' commands.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from runtime import history, keys
from runtime.errors import CorruptRecordError
from runtime.late import late_records
from runtime.observability import logger
from runtime.parquet import from_parquet
from runtime.ports import PacketIds, ProcessedStore
from runtime.reading import coerced_schema
from runtime.records import CommitRecord
from runtime.remembered import Lru, RememberingStore
from runtime.state import empty, loaded
from runtime.tables import FACT_OF_SOURCE, OUTPUTS, SOURCES, STATE_INPUTS, consumed_parameter, produced_parameter
from runtime.transform import emitted_keys


class Committed:
    """The committed state of one processed bucket and its packet ids."""

    def __init__(self, store: ProcessedStore, packet_ids: PacketIds, ssm_prefix: str) -> None:
        # Immutable objects are read once per invocation at least: per warm container
        # when the store given remembers them already (runtime.remembered).
        self._store = store if isinstance(store, RememberingStore) else RememberingStore(store, Lru(), "")
        self._memory = self._store.memory
        self._ids = packet_ids
        self._prefix = ssm_prefix
        self._late: dict[str, list[CommitRecord]] | None = None  # late commit records, by table

    def produced(self, output_table: str) -> int:
        return self._ids.read_packet_id(produced_parameter(self._prefix, output_table))

    def memory(self, table: str) -> history.FactMemory:
        """The versions of `table`'s facts written so far: the memory as of the fact
        output packet its `produced` id names (so an uncommitted attempt's is not)."""
        source = SOURCES[table]
        manifest = self.current_manifest(table, self._ids.read_packet_id(
            produced_parameter(self._prefix, source.primary_output)))
        if manifest is None:
            return history.FactMemory.empty(source)
        return history.FactMemory.load(source, manifest, self.read_once)

    def read_once(self, key: str) -> bytes | None:
        """Read an object of the fact memory: immutable, so remembered by the store."""
        return self._store.read(key)

    def current_manifest(self, table: str, produced: int) -> str | None:
        """The memory as of fact output `produced`, or the one the last packet of
        `table` wrote after it (re-sends only: runtime.history.current_manifest).

        The last packet is a late one when one was processed since the last commit of
        the table (its commit record is in `_commits/late/`, naming the memory it left,
        built on the one before it). Found in the late records listed once per
        invocation (late_records_of): no read per packet."""
        consumed = self.consumed(table)
        last = None
        late = [r for r in self.late_records_of(table) if r.late["after"] == consumed] if consumed else []
        if late:
            last = max(late, key=lambda r: r.late["seq"]).state
        elif consumed:
            data = self._store.read(keys.commit_key(table, consumed))
            last = CommitRecord.from_json(keys.commit_key(table, consumed), data).state if data else None
        return history.current_manifest(table, produced, self._memory_manifest(table, produced), last)

    def _memory_manifest(self, table: str, produced: int) -> str | None:
        if produced == 0:
            return None
        key = keys.history_manifest_key(table, produced)
        if self.read_once(key) is None:
            # Facts written before the memory existed: it starts from here.
            logger.warning("no fact memory for the facts written so far: remembering from now on",
                           extra={"table": table, "manifest": key})
            return None
        return key

    # -- committed state and helpers -------------------------------------------

    def consumed(self, table: str) -> int:
        return self._ids.read_packet_id(consumed_parameter(self._prefix, table))

    def state_key(self, table: str) -> str | None:
        """The key of `table`'s committed state snapshot, from its last commit record;
        for a fact source, its fact memory (a packet passed over keeps it)."""
        if not SOURCES[table].keeps_state:
            return self.current_manifest(table, self._ids.read_packet_id(
                produced_parameter(self._prefix, SOURCES[table].primary_output)))
        consumed = self.consumed(table)
        if consumed == 0:
            return None
        # A late packet processed since the last commit of the table holds its state.
        late = [r for r in self.late_records_of(table) if r.late["after"] == consumed]
        if late:
            return max(late, key=lambda r: r.late["seq"]).state
        commit_key = keys.commit_key(table, consumed)
        data = self._store.read(commit_key)
        if data is None:
            raise CorruptRecordError(
                f"{consumed_parameter(self._prefix, table)} is {consumed} but {commit_key} does not exist"
            )
        return CommitRecord.from_json(commit_key, data).state

    @property
    def store(self) -> RememberingStore:
        return self._store

    def state(self, table: str) -> pa.Table:
        return self.state_at(table, self.state_key(table))

    def state_at(self, table: str, key: str | None) -> pa.Table:
        """`table`'s state as snapshot `key` holds it (None: no state yet); parsed once
        per snapshot, the snapshot being immutable."""
        if key is None:
            return empty(SOURCES[table])

        def parsed() -> pa.Table:
            data = self._store.read(key)
            if data is None:
                raise CorruptRecordError(f"state snapshot {key} named by a commit record does not exist")
            return loaded(from_parquet(data), coerced_schema(SOURCES[table]))

        return self._memory.remembered((self._store.name, "state", key), parsed, lambda t: t.nbytes)

    def inputs(self, *tables: str) -> tuple[dict[str, pa.Table], dict[str, pa.Array]]:
        """What packets of `tables` are transformed against: the committed states they
        read, and the keys each dimension they refer to (a fact) or feed (a dimension:
        what it held before) holds, remembered per set of state snapshots."""
        snapshots = {t: self.state_key(t) for table in tables for t in STATE_INPUTS[table]}
        states = {t: self.state_at(t, k) for t, k in snapshots.items()}
        dimensions = [r.dimension for t in tables if not SOURCES[t].keeps_state for r in FACT_OF_SOURCE[t].references]
        dimensions += [SOURCES[t].primary_output for t in tables
                       if SOURCES[t].keeps_state and OUTPUTS[SOURCES[t].primary_output].source == t]
        return states, {d: self.emitted(d, states, snapshots) for d in dict.fromkeys(dimensions)}

    def emitted(self, dimension: str, states: dict[str, pa.Table], snapshots: dict[str, str | None]) -> pa.Array:
        """The keys dimension `dimension` holds (runtime.transform.emitted_keys) given
        `states`, read from `snapshots`: computed once per set of snapshots, which are
        immutable, so a new snapshot (a dimension packet committed) is a new entry."""
        out = OUTPUTS[dimension]
        inputs = (out.source, *(j.parent for j in out.joins))
        key = (self._store.name, "emitted", dimension, tuple(snapshots[t] for t in inputs))
        return self._memory.remembered(key, lambda: emitted_keys(out, states), lambda a: a.nbytes)

    def late_records_of(self, table: str) -> list[CommitRecord]:
        """The late commit records of `table` (listed once per invocation: rare)."""
        if self._late is None:
            self._late = late_records(self._store)
        return self._late.setdefault(table, [])


def put(store: ProcessedStore, key: str, body: bytes, source: str, rows: int) -> str:
    """A conditional put with the metadata every object carries (docs/design.md#keys);
    returns the body's sha256."""
    sha = hashlib.sha256(body).hexdigest()
    store.put_if_absent(key, body, {"source": source, "rows": str(rows), "sha256": sha})
    return sha


def committed_state_key(store: ProcessedStore, packet_ids: PacketIds, ssm_prefix: str, table: str) -> str | None:
    """The key of `table`'s committed state (late packets included), for operators."""
    return Committed(store, packet_ids, ssm_prefix).state_key(table)
