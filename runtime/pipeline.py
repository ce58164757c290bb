"""Ordering and the one commit path (docs/design.md#ordering, #commit-steps, #backlog).
Talks only to ports.

Why it is shaped like this: a run can be killed after any write, and another event can
arrive before Lambda retries it. So every named packet is first recorded as pending
(runtime.pending), pending packets are finished strictly in the order they arrived, and
each commit runs in steps that a retry can repeat: outputs (immutable, conditional
puts), then one commit record (runtime.records), then the SSM ids (produced before
consumed). A retry sees the same committed state (runtime.committed) and so computes
the same bytes under the same keys.

`Pipeline.commit` is those steps, written once. A packet, a packet passed over, a late
packet (runtime.late), a replay of waiting facts (runtime.replays) and the rebuild's
ordered commit (runtime.rebuild) each name where they write (a CommitSpace) and what
their step 2 computes, and call it. What a commit is reported as is runtime.outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pyarrow as pa

from runtime import history, keys
from runtime.drift import PacketDrift
from runtime.committed import Committed, committed_state_key, put
from runtime.errors import MissingPacketError
from runtime.events import Event
from runtime.late import check_gaps, later_packet_with_objects, process_late
from runtime.observability import (
    PACKET_GAP,
    PACKETS_PROCESSED,
    SCHEMA_DRIFT,
    Metrics,
    logger,
)
from runtime.outcomes import count
from runtime.parquet import to_parquet
from runtime.pending import (
    REPLAY,
    left_pending,
    list_pending,
    queue_after,
    queue_late,
    queue_replay,
    record_pending,
    request_replay,
)
from runtime.ports import IngestionSource, PacketIds, ProcessedStore
from runtime.reading import parse_block, read_blocks
from runtime.records import (
    CommitRecord, CommitSpace, Computed, PacketLines, PacketOutcome, RunSummary, WrittenObject,
)
from runtime.remembered import InvocationIds
from runtime.replays import facts_waiting_for, run_replay
from runtime.tables import (
    SOURCES,
    consumed_parameter,
    produced_parameter,
)
from runtime.transform import Transformed, transform
from runtime.versions import HistoryUpdate
from runtime.waits import DEFAULT_ALARM_HOURS, WaitWatch

# What callers import from here: the pipeline, its records and the operators' requests.
__all__ = [
    "CommitRecord",
    "PacketOutcome",
    "Pipeline",
    "RunSummary",
    "WrittenObject",
    "committed_state_key",
    "queue_late",
    "queue_replay",
    "request_replay",
]

# Computes step 2's outputs of a packet: (table, packet name, its object keys) ->
# (the transformed packet, the lines each object held).
Compute = Callable[[str, str, list[str]], "tuple[Transformed, PacketLines]"]


class _OutOfTime(Exception):
    """Less time is left than the worst case of one packet: stop before the next."""


class Pipeline:
    """Processes the packets of events, exactly once each, in order."""

    # -- the invocation --------------------------------------------------------

    def __init__(
        self,
        source: IngestionSource,
        store: ProcessedStore,
        packet_ids: PacketIds,
        ssm_prefix: str,
        metrics: Metrics,
        seconds_left: Callable[[], float] | None = None,
        stop_margin: float = 0.0,
        wait_alarm_hours: float = DEFAULT_ALARM_HOURS,
    ) -> None:
        """`seconds_left`: the time left before the invocation's timeout (Lambda's
        context), None for no limit (a local run); the run stops between two packets
        once less than `stop_margin` seconds are left (docs/design.md#backlog)."""
        self._seconds_left = seconds_left
        self._stop_margin = stop_margin
        self._source = source
        self._ids = InvocationIds(packet_ids)  # read once per invocation (runtime.remembered)
        self._prefix = ssm_prefix
        self._metrics = metrics
        self._current = ""  # the key of the pending record being processed
        self._evidence: dict[str, int] = {}  # table -> a later packet seen with objects
        self._committed = Committed(store, self._ids, ssm_prefix)
        self._store = self._committed.store  # remembers immutable objects (runtime.remembered)
        self._watch = WaitWatch(metrics, wait_alarm_hours)  # reports waits that are overdue

    @property
    def store(self) -> ProcessedStore:
        return self._store

    @property
    def source(self) -> IngestionSource:
        return self._source

    def run(self, event: Event, summary: RunSummary | None = None) -> RunSummary:
        """Process the event (and what earlier invocations left pending). `summary` is
        filled in as it goes, so a caller holding it still has it when this raises."""
        summary = summary if summary is not None else RunSummary()
        earlier = list_pending(self._store)
        requested = {p.late for p in earlier if p.late}
        gaps = check_gaps(self._store, self._source, self._metrics, event.packets, requested, summary)
        recorded = record_pending(self._store, event.packets, earlier, summary, gaps, self.consumed)
        if not earlier and not recorded:
            logger.info("nothing to process", extra={"named": [str(r) for r in event.packets]})
            return summary
        if earlier:
            logger.info(
                "finishing packets left pending by earlier invocations first",
                extra={"pending": [str(r) for p in earlier for r in p.refs]},
            )
        # Listed again after each record: processing may queue a replay of waiting facts.
        try:
            while queue := list_pending(self._store):
                key, refs, replay, late = queue[0]
                self._current = key
                for ref in refs:
                    self._process_through(ref.table, ref.id, summary)
                if late is not None:
                    self._check_time(str(late), summary)
                    summary.failed_packet = str(late)
                    summary.outcomes.append(process_late(self, late.table, late.id))
                if replay is not None:
                    self._check_time(f"replay:{replay}", summary)
                    summary.failed_packet = f"replay:{replay}"
                    summary.outcomes.append(run_replay(self, replay, self._watch))
                self._store.delete(key)
        except _OutOfTime as stop:
            summary.left_pending = left_pending(self._store, self.consumed)
            logger.warning(
                "stopping before the timeout, between two packets: the rest stays pending "
                "and the next invocation carries on from it",
                extra={"next": str(stop), "seconds_left": round(self._seconds_left(), 1),  # type: ignore[misc]
                       "processed": [o.packet for o in summary.outcomes], "left_pending": summary.left_pending},
            )
        summary.failed_packet = None
        return summary

    def _check_time(self, next_packet: str, summary: RunSummary) -> None:
        """Stop before `next_packet` when less than one packet's worst case is left,
        once this invocation did one (so a timeout shorter than the margin still
        makes progress: a kill midway is safe, the commit steps resume)."""
        if self._seconds_left is None or not summary.outcomes:
            return
        if self._seconds_left() < self._stop_margin:
            raise _OutOfTime(next_packet)

    # -- one table, up to a packet ---------------------------------------------

    def _process_through(self, table: str, packet_id: int, summary: RunSummary) -> None:
        consumed = self.consumed(table)
        if packet_id <= consumed:
            summary.already_processed.append(f"{table}:{packet_id}")
            logger.info("packet already processed; skipped", extra={"packet": f"{table}:{packet_id}"})
            return
        if packet_id > consumed + 1:
            logger.warning(
                "packet id gap: catching up on the packets in between first",
                extra={"packet": f"{table}:{packet_id}", "consumed": consumed,
                       "catching_up": [consumed + 1, packet_id - 1]},
            )
            self._metrics.add(PACKET_GAP, table)
        for k in range(consumed + 1, packet_id + 1):
            self._check_time(f"{table}:{k}", summary)
            summary.failed_packet = f"{table}:{k}"
            summary.outcomes.append(self._process_packet(table, k))

    # -- one packet: the commit steps ------------------------------------------

    def commit_packet(self, table: str, packet_id: int, compute: Compute | None) -> PacketOutcome:
        """The commit steps for packet (T, k), its outputs given by `compute` instead
        of read here: the rebuild's ordered commit of facts staged in parallel
        (runtime.rebuild) commits through exactly these steps."""
        return self._process_packet(table, packet_id, compute)

    def _process_packet(self, table: str, packet_id: int, compute: Compute | None = None) -> PacketOutcome:
        space = CommitSpace(
            f"{table}:{packet_id}",
            keys.commit_key(table, packet_id),
            lambda output_table: keys.quarantine_key(output_table, table, packet_id),
            keys.state_key(table, packet_id),
        )
        _, outcome = self.commit(space, lambda: self._packet(table, packet_id, compute))
        self._metrics.add(PACKETS_PROCESSED, table)
        return outcome

    def commit(self, space: CommitSpace, compute: Callable[[], Computed]) -> tuple[CommitRecord, PacketOutcome]:
        """The commit steps (docs/design.md#commit-steps), written once: every path
        (a packet, a packet passed over, a late packet, a replay, the rebuild's ordered
        commit) commits through here, with its own keys and its own step 2."""
        found = space.find_record(self._store.read)  # step 1
        if found is not None:
            record = CommitRecord.from_json(*found)
            if record.skipped:
                logger.warning("packet was skipped by an operator", extra={"packet": space.name, "skip": record.skipped})
            else:
                logger.info("commit record found: finishing the commit", extra={"packet": space.name})
            status = "skipped" if record.skipped else "recovered"
            outcome = PacketOutcome(space.name, status, record.outputs, record.quarantine)
        else:
            computed = compute()  # step 2
            if computed.result is None:  # nothing but the record (a packet passed over)
                record = computed.record
                self.put(space.record_key, record.to_json(), space.name, rows=0)
                outcome = PacketOutcome(space.name, "passed_over")
            else:
                record, outcome = self._write_all(space, computed)  # steps 3 and 4
        self._apply(record)  # step 5
        return record, outcome

    def _write_all(self, space: CommitSpace, computed: Computed) -> tuple[CommitRecord, PacketOutcome]:
        result, record = computed.result, computed.record
        if result.state is not None and space.state_key is not None:
            self.put(space.state_key, to_parquet(result.state), space.name, result.state.num_rows)
            # New dimension rows may complete facts that were waiting for them.
            replay = facts_waiting_for(self._store, result, self._watch)
            record = replace(record, state=space.state_key, replay_requested=replay)
        record = self._write(space.name, record, result, space.quarantine_key, space.record_key)
        return record, count(self._metrics, space.name, record, result, computed.lines)

    def _packet(self, table: str, packet_id: int, compute: Compute | None) -> Computed:
        """Step 2 for packet (T, k): its objects transformed, or passed over on evidence."""
        name = f"{table}:{packet_id}"
        prefix = keys.packet_prefix(table, packet_id)
        listed = self._source.list_keys(prefix)
        object_keys = [k for k in listed if keys.is_packet_object(k)]
        if len(object_keys) < len(listed):
            logger.warning(
                "ignoring objects that are not .jsonl or .jsonl.gz",
                extra={"packet": name, "keys": [k for k in listed if k not in object_keys][:10]},
            )
        if not object_keys:
            evidence = later_packet_with_objects(self._source, self._evidence, table, packet_id)
            if evidence is None:
                raise MissingPacketError(table, packet_id, prefix, looked_for_later=True)
            logger.error(
                "packet has no objects while a later one has: passed over",
                extra={"packet": name, "prefix": prefix, "evidence": f"{table}:{evidence}"},
            )
            self._metrics.add(PACKET_GAP, table)
            return Computed(CommitRecord(table, packet_id, state=self._committed.state_key(table), missing=True), None)
        result, lines = (compute or self.transform_packet)(table, name, object_keys)
        return Computed(CommitRecord(table, packet_id), result, lines)

    def transform_packet(
        self, table: str, name: str, object_keys: list[str], memory: history.FactMemory | None = None
    ) -> tuple[Transformed, PacketLines]:
        """The packet's objects transformed; and the lines they held. A fact source's
        against `memory` when given, else the committed fact memory."""
        source = SOURCES[table]
        states, known = self.inputs(table)
        # Streamed: objects are opened one at a time and read in blocks.
        objects = ((key, self._source.open(key)) for key in object_keys)
        lines, blank = dict.fromkeys(object_keys, 0), dict.fromkeys(object_keys, 0)

        # No row may be newer than the object that carries it (a 9999 stamp would win
        # its key forever).
        written = {key: self._source.last_modified(key) for key in object_keys}
        drift = PacketDrift(source)

        def counted(blocks):
            for block in blocks:
                parsed = self._seen(drift, parse_block(source, block, written[block.key]))
                lines[block.key] += parsed.lines
                blank[block.key] += parsed.blank
                yield parsed

        blocks = counted(read_blocks(objects))
        if memory is None and not source.keeps_state:
            memory = self.memory(table)
        packet_id = int(name.rsplit(":", 1)[1])  # the rows' packet: what supersedes what
        result = transform(source, blocks, states, name, memory, packet_id, known)
        if drift:
            logger.warning(
                "schema drift: the source's columns differ from the declaration",
                extra={"packet": name, "table": table, **drift.to_log()},
            )
            self._metrics.add(SCHEMA_DRIFT, table)
        return result, PacketLines(lines, sum(lines.values()) - sum(blank.values()))

    def _write(
        self, name: str, record: CommitRecord, result: Transformed, quarantine_key, commit_key: str
    ) -> CommitRecord:
        """Steps 3 and 4: every output and quarantine object, then the commit record
        (`record` completed with them) that names them all."""
        outputs = []
        for out in result.outputs:
            n = self._ids.read_packet_id(produced_parameter(self._prefix, out.table)) + 1
            key = keys.output_key(out.table, n, out.updated)
            sha = self.put(key, out.body, name, out.rows)
            outputs.append(WrittenObject(out.table, key, out.rows, sha, n))
        quarantine = []
        for output_table, body in sorted(result.quarantine.items()):
            key = quarantine_key(output_table)
            lines = body.count(b"\n")
            quarantine.append(WrittenObject(output_table, key, lines, self.put(key, body, name, lines)))
        record = replace(record, outputs=tuple(outputs), quarantine=tuple(quarantine))
        manifests = tuple(m for m in (self._remember(name, u, outputs) for u in result.history) if m)
        if record.table == REPLAY:
            record = replace(record, memories=manifests)
        elif manifests:
            [manifest] = manifests  # a packet feeds one fact
            record = replace(record, state=manifest)
        self.put(commit_key, record.to_json(), name, len(outputs))
        return record

    def _remember(self, name: str, update: HistoryUpdate, outputs: list[WrittenObject]) -> str | None:
        """Step 3 for the fact memory: the segment of the versions just written and
        the manifest naming it, keyed by the fact output packet; returns the manifest
        (the memory after this packet) for the commit record."""
        fact_table = SOURCES[update.table].primary_output
        fact = next((o for o in outputs if o.table == fact_table), None)
        produced = self._ids.read_packet_id(produced_parameter(self._prefix, fact_table))
        previous = self._committed.current_manifest(update.table, produced)
        if (not update.written.num_rows and update.waiting is None) or (fact is None and name.startswith(f"{REPLAY}:")):
            return previous
        # No fact output, only re-sends or waits: remembered as sent by this packet all
        # the same (a row still waiting from an earlier packet is superseded by re-sends).
        then = None if fact is not None else int(name.rsplit(":", 1)[1])
        n = fact.packet if fact is not None else produced
        read = self._committed.read_once
        for key, body, rows in history.advance(read, update.table, previous, n, update.written, then, update.waiting):
            self.put(key, body, name, rows)
        return keys.history_manifest_key(update.table, n) if then is None else keys.history_then_key(update.table, n, then)

    def _apply(self, record: CommitRecord) -> None:
        """Step 5: produced ids first, consumed last, so a crash in between is redone."""
        for out in record.outputs:
            self._ids.write_packet_id(produced_parameter(self._prefix, out.table), out.packet)
        if record.replay_requested:
            # Before consumed: a retry of this step must still find it to do.
            late = "late_" if record.late is not None else ""
            queue_after(self._store, self._current, f"after_{record.table}_{late}packet_{record.packet}")
        if record.late is not None:
            # The gap is closed: later invocations stop reporting it. Consumed stays.
            self._store.delete(keys.gap_key(record.table, record.packet))
            return
        if record.missing and not record.skipped:
            # Before consumed, so a retry of this step still writes it: every later
            # invocation checks whether the packet's objects have arrived.
            body = json.dumps({"table": record.table, "packet": record.packet}).encode()
            self._store.put_if_absent(keys.gap_key(record.table, record.packet), body, {})
        if record.replayed is None:  # a replay consumes quarantine files, not a packet
            self._ids.write_packet_id(consumed_parameter(self._prefix, record.table), record.packet)

    # -- the committed state (runtime.committed) ----------------------------------

    def consumed(self, table: str) -> int:
        return self._committed.consumed(table)

    def inputs(self, *tables: str) -> tuple[dict[str, pa.Table], dict[str, pa.Array]]:
        return self._committed.inputs(*tables)

    def memory(self, table: str) -> history.FactMemory:
        return self._committed.memory(table)

    def late_records_of(self, table: str) -> list[CommitRecord]:
        return self._committed.late_records_of(table)

    def put(self, key: str, body: bytes, source: str, rows: int) -> str:
        return put(self._store, key, body, source, rows)

    @staticmethod
    def _seen(drift: PacketDrift, parsed):
        drift.add(parsed.unknown_columns, parsed.failures)
        return parsed
