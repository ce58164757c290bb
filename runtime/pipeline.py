"""Ordering, pending packets and the commit steps of DESIGN §6. Talks only to ports.

Why it is shaped like this: a run can be killed after any write, and another event can
arrive before Lambda retries it. So every named packet is first recorded as pending,
pending packets are finished strictly in the order they arrived, and each packet
commits in steps that a retry can repeat: outputs (immutable, conditional puts), then
one commit record, then the SSM ids (produced before consumed). A retry of a packet
sees the same committed state and so computes the same bytes under the same keys.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from runtime import history, keys
from runtime.drift import PacketDrift
from runtime.errors import CorruptRecordError, InvalidEventError, MissingPacketError
from runtime.events import Event, PacketRef, parse_event
from runtime.observability import (
    LATE_PACKET,
    PACKET_GAP,
    PACKETS_PROCESSED,
    ROWS_REJECTED,
    ROWS_WRITTEN,
    SCHEMA_DRIFT,
    SILENT_MUTATION,
    Metrics,
    logger,
)
from runtime.parquet import from_parquet, to_parquet
from runtime.ports import IngestionSource, PacketIds, ProcessedStore
from runtime.reading import coerced_schema, parse_block, read_blocks
from runtime.state import empty
from runtime.tables import (
    FACTS,
    SOURCES,
    STATE_INPUTS,
    WAITED_FOR,
    consumed_parameter,
    produced_parameter,
)
from runtime.star import ARROW_SCHEMAS
from runtime.transform import Transformed, replay_facts, transform
from runtime.validation import WAITS_FOR

# An event may name a packet far ahead of the last one processed; the ones between are
# caught up first. Past this many, the id is more likely a bug than a backlog.
MAX_CATCH_UP = 1000

ROWS_SEEN = "__rows"  # in the lines-per-object count of a packet: its non-blank lines

# A pending record may ask for a late packet to be processed: {"packets": [], "late":
# {"table": T, "id": k}} (runtime.operations late).
LATE = "late"
# A pending record may ask for a replay of the quarantined facts: {"packets": [],
# "replay": id}. An operator's replay is numbered (claimed under _replays/); a dimension
# packet that may complete waiting facts asks for one named after_{table}_packet_{k}.
REPLAY = "replay"
# The outputs whose quarantined rows a replay offers again: every fact (runtime/tables.py).
REPLAYED_TABLES: tuple[str, ...] = tuple(f.name for f in FACTS)


class Pending(NamedTuple):
    """One pending record: what an invocation (or an operator) asked for."""

    key: str
    refs: tuple[PacketRef, ...]
    replay: str | None = None
    late: PacketRef | None = None


@dataclass(frozen=True)
class WrittenObject:
    table: str
    key: str
    rows: int
    sha256: str
    packet: int | None = None  # the output packet number n (outputs only)


@dataclass(frozen=True)
class CommitRecord:
    """What one source packet committed; written once, after all its objects."""

    table: str
    packet: int
    outputs: tuple[WrittenObject, ...] = ()
    quarantine: tuple[WrittenObject, ...] = ()
    # The dimension state after this packet; for a fact source, its fact memory's
    # manifest (a replay, which may touch several facts, names them in `memories`).
    state: str | None = None
    missing: bool = False  # passed over: no objects while a later packet existed
    skipped: dict | None = None  # passed over by an operator: reason, by (runtime.operations)
    replayed: tuple[str, ...] | None = None  # a replay's record: the quarantine files it took
    replay_requested: bool = False  # a dimension packet that facts were waiting for
    # A packet processed late (passed over, then its objects came): {"after": consumed
    # of its table when it ran, "seq": how many late packets of the table ran after
    # that same consumed packet before it}. Its state follows the table's then.
    late: dict | None = None
    memories: tuple[str, ...] = ()  # a replay's: the fact memories after it, one per fact

    def to_json(self) -> bytes:
        # No wall-clock time in here: a retry must produce the very same bytes.
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, key: str, data: bytes) -> CommitRecord:
        try:
            raw = json.loads(data)
            return cls(
                table=raw["table"],
                packet=raw["packet"],
                outputs=tuple(WrittenObject(**o) for o in raw["outputs"]),
                quarantine=tuple(WrittenObject(**o) for o in raw["quarantine"]),
                state=raw["state"],
                missing=raw["missing"],
                skipped=raw.get("skipped"),
                replayed=tuple(raw["replayed"]) if raw.get("replayed") is not None else None,
                replay_requested=raw.get("replay_requested", False),
                late=raw.get("late"),
                memories=tuple(raw.get("memories", ())),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecordError(f"commit record {key} is unreadable: {exc}") from exc


@dataclass
class PacketOutcome:
    packet: str
    status: str  # committed | recovered | passed_over | skipped | late | ignored
    outputs: tuple[WrittenObject, ...] = ()
    quarantine: tuple[WrittenObject, ...] = ()
    reports: tuple = ()
    empty_objects: tuple[str, ...] = ()  # objects of the packet that held no lines
    empty: bool = False  # the packet held no rows at all


@dataclass
class RunSummary:
    outcomes: list[PacketOutcome] = field(default_factory=list)
    already_processed: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)  # passed over, and now their objects exist
    failed_packet: str | None = None

    def rows_written(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            for out in outcome.outputs:
                totals[out.table] = totals.get(out.table, 0) + out.rows
        return totals

    def empty_packets(self) -> list[str]:
        return [o.packet for o in self.outcomes if o.empty]

    def rows_rejected(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            for report in outcome.reports:
                if report.rows_rejected:
                    totals[report.table] = totals.get(report.table, 0) + report.rows_rejected
        return totals


class Pipeline:
    """Processes the packets of events, exactly once each, in order."""

    def __init__(
        self,
        source: IngestionSource,
        store: ProcessedStore,
        packet_ids: PacketIds,
        ssm_prefix: str,
        metrics: Metrics,
    ) -> None:
        self._source = source
        self._store = store
        self._ids = packet_ids
        self._prefix = ssm_prefix
        self._metrics = metrics
        self._current = ""  # the key of the pending record being processed
        self._evidence: dict[str, int] = {}  # table -> a later packet seen with objects
        self._late: dict[str, list[CommitRecord]] | None = None  # late commit records, by table
        self._immutable: dict[str, bytes | None] = {}  # fact memory objects read this invocation

    # -- the invocation -------------------------------------------------------------

    def run(self, event: Event, summary: RunSummary | None = None) -> RunSummary:
        """Process the event (and what earlier invocations left pending). `summary` is
        filled in as it goes, so a caller holding it still has it when this raises."""
        summary = summary if summary is not None else RunSummary()
        earlier = self._pending_events()
        gaps = self._check_gaps(event.packets, {p.late for p in earlier if p.late}, summary)
        recorded = self._record_pending(event.packets, earlier, summary, gaps)
        if not earlier and not recorded:
            logger.info("nothing to process", extra={"named": [str(r) for r in event.packets]})
            return summary
        if earlier:
            logger.info(
                "finishing packets left pending by earlier invocations first",
                extra={"pending": [str(r) for p in earlier for r in p.refs]},
            )
        # Listed again after each record: processing may queue a replay of waiting facts.
        while queue := self._pending_events():
            newest: dict[str, int] = {}
            for pending in queue:
                for ref in pending.refs:
                    newest[ref.table] = max(newest.get(ref.table, 0), ref.id)
            key, refs, replay, late = queue[0]
            self._current = key
            for ref in refs:
                self._process_through(ref.table, ref.id, newest[ref.table], summary)
            if late is not None:
                summary.failed_packet = str(late)
                summary.outcomes.append(self._process_late(late.table, late.id))
            if replay is not None:
                summary.failed_packet = f"replay:{replay}"
                summary.outcomes.append(self._replay(replay))
            self._store.delete(key)
        summary.failed_packet = None
        return summary

    def _pending_events(self) -> list[Pending]:
        """What earlier invocations recorded and did not finish, in arrival order:
        (its key, packets, the replay of quarantined facts asked for, the late packet
        asked for)."""
        pending = []
        for key in self._store.list_keys(keys.PENDING):  # key order is arrival order
            parsed = keys.parse_pending_key(key)
            data = self._store.read(key) if parsed is not None else None
            if data is None:
                logger.warning("ignoring an unexpected object under _pending/", extra={"key": key})
                continue
            try:
                body = json.loads(data)
                replay = body.pop(REPLAY, None)
                if replay is not None:
                    replay = keys.replay_id(replay)
                late = body.pop(LATE, None)
                if late is not None:
                    [late] = parse_event({"packets": [late]}).packets
                refs = parse_event(body).packets
            except (ValueError, AttributeError, InvalidEventError) as exc:
                raise CorruptRecordError(f"pending record {key} is unreadable: {exc}") from exc
            pending.append(Pending(key, refs, replay, late))
        return pending

    def _record_pending(
        self,
        refs: tuple[PacketRef, ...],
        earlier: list[Pending],
        summary: RunSummary,
        gaps: dict[tuple[str, int], bool],
    ) -> bool:
        """Record the event's new packets as pending, in one object, before any work;
        False when none is new (all processed already, or pending already).

        One object per event, so a crash never leaves half an event recorded: the
        order packets will be processed in is fixed the moment it is written.
        """
        already_pending = {r for p in earlier for r in p.refs}
        todo = []
        for ref in refs:
            consumed = self._consumed(ref.table)
            if ref.id <= consumed and gaps.get((ref.table, ref.id)):
                pass  # a late packet: reported at ERROR by _check_gaps, never "already processed"
            elif ref.id <= consumed and (ref.table, ref.id) in gaps:
                summary.already_processed.append(str(ref))
                logger.warning(
                    "packet named again: it was passed over as missing and still has no objects",
                    extra={"packet": str(ref), "consumed": consumed},
                )
            elif ref.id <= consumed:
                summary.already_processed.append(str(ref))
                logger.info(
                    "packet already processed; skipped",
                    extra={"packet": str(ref), "consumed": consumed},
                )
            elif ref.id - consumed > MAX_CATCH_UP:
                raise InvalidEventError(
                    f"packet {ref} is {ref.id - consumed} packets ahead of the last one "
                    f"processed ({consumed}); more than {MAX_CATCH_UP} is refused as a likely bug"
                )
            elif ref not in already_pending:
                todo.append(ref)
        if not todo:
            return False
        seq = max((keys.parse_pending_key(p.key)[0] for p in earlier), default=0) + 1
        body = json.dumps({"packets": [{"table": r.table, "id": r.id} for r in todo]}).encode()
        self._store.put_if_absent(keys.pending_key(seq), body, {})
        return True

    # -- late packets ---------------------------------------------------------------

    def _check_gaps(
        self, named: tuple[PacketRef, ...], requested: set[PacketRef], summary: RunSummary
    ) -> dict[tuple[str, int], bool]:
        """Every passed-over packet not yet processed late, and whether its objects
        have arrived since: (table, id) -> has objects.

        Checked at the start of every invocation, named or not: one listing of
        `_gaps/` (a marker per open gap, so normally empty) and one per open gap. A
        late packet is an ERROR and a `LatePacket` metric at every invocation until
        an operator processes it (`runtime.operations late`), never "already
        processed".
        """
        gaps = {}
        for key in self._store.list_keys(keys.GAPS):
            gap = keys.parse_gap_key(key)
            if gap is None:
                logger.warning("ignoring an unexpected object under _gaps/", extra={"key": key})
                continue
            table, packet_id = gap
            found = self._objects(table, packet_id)
            gaps[gap] = bool(found)
            ref = PacketRef(table, packet_id)
            if found and ref not in requested:
                summary.late.append(str(ref))
                logger.error(
                    "objects of a packet that was passed over have arrived: a late packet, not processed",
                    extra={
                        "packet": str(ref),
                        "objects": found[:10],
                        "named_again": ref in named,
                        "to_process_it": f"python -m runtime.operations late --table {table} --packet {packet_id}",
                    },
                )
                self._metrics.add(LATE_PACKET, table)
        return gaps

    def _process_late(self, table: str, packet_id: int) -> PacketOutcome:
        """Process a passed-over packet whose objects arrived, once, at an operator's
        request: the same commit steps as a packet, its own commit record under
        `_commits/late/`. Its outputs take the next numbers; its dimension rows
        follow the state rules against today's state; consumed does not move."""
        name = f"{table}:{packet_id}"
        commit_key = keys.late_commit_key(table, packet_id)
        existing = self._store.read(commit_key)
        if existing is not None:
            record = CommitRecord.from_json(commit_key, existing)
            logger.info("late commit record found: finishing the commit", extra={"packet": name})
            self._apply(record)
            return PacketOutcome(name, "recovered", record.outputs, record.quarantine)
        passed = self._store.read(keys.commit_key(table, packet_id))
        if passed is None or not CommitRecord.from_json(keys.commit_key(table, packet_id), passed).missing:
            logger.error("late processing asked for a packet that was not passed over: ignored",
                         extra={"packet": name})
            return PacketOutcome(name, "ignored")
        object_keys = self._objects(table, packet_id)
        if not object_keys:
            raise MissingPacketError(table, packet_id, keys.packet_prefix(table, packet_id))
        consumed = self._consumed(table)
        seq = sum(1 for r in self._late_records(table) if r.late["after"] == consumed)
        result, lines = self._transform(table, name, object_keys)
        state = None
        if result.state is not None:
            state = keys.late_state_key(table, packet_id)
            self._put(state, to_parquet(result.state), name, result.state.num_rows)
        replay = result.state is not None and self._facts_waiting_for(result)
        record = self._write(
            name,
            CommitRecord(table, packet_id, state=state, replay_requested=replay,
                         late={"after": consumed, "seq": seq}),
            result,
            lambda output_table: keys.late_quarantine_key(output_table, table, packet_id),
            commit_key,
        )
        self._late_records(table).append(record)
        self._apply(record)
        logger.warning("late packet processed", extra={
            "packet": name, "rows_written": {o.table: o.rows for o in record.outputs}})
        return replace(self._count(name, record, result, lines), status="late")

    def _late_records(self, table: str) -> list[CommitRecord]:
        """The late commit records of `table` (listed once per invocation: rare)."""
        if self._late is None:
            self._late = {}
            for key in self._store.list_keys(keys.LATE_COMMITS):
                record = CommitRecord.from_json(key, self._store.read(key) or b"")
                self._late.setdefault(record.table, []).append(record)
        return self._late.setdefault(table, [])

    # -- one table, up to a packet ------------------------------------------------

    def _process_through(self, table: str, packet_id: int, newest: int, summary: RunSummary) -> None:
        consumed = self._consumed(table)
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
            summary.failed_packet = f"{table}:{k}"
            summary.outcomes.append(self._process_packet(table, k, newest))

    # -- one packet: the commit steps ---------------------------------------------

    def _process_packet(self, table: str, packet_id: int, newest: int) -> PacketOutcome:
        name = f"{table}:{packet_id}"
        commit_key = keys.commit_key(table, packet_id)
        existing = self._store.read(commit_key)  # step 1
        if existing is not None:
            record = CommitRecord.from_json(commit_key, existing)
            if record.skipped:
                logger.warning("packet was skipped by an operator", extra={"packet": name, "skip": record.skipped})
            else:
                logger.info("commit record found: finishing the commit", extra={"packet": name})
            status = "skipped" if record.skipped else "recovered"
            outcome = PacketOutcome(name, status, record.outputs, record.quarantine)
        else:
            record, outcome = self._compute_and_write(table, packet_id, newest)  # steps 2-4
        self._apply(record)  # step 5
        self._metrics.add(PACKETS_PROCESSED, table)
        return outcome

    def _compute_and_write(
        self, table: str, packet_id: int, newest: int
    ) -> tuple[CommitRecord, PacketOutcome]:
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
            evidence = self._later_packet_with_objects(table, packet_id, newest)
            if evidence is None:
                raise MissingPacketError(table, packet_id, prefix, newest)
            logger.error(
                "packet has no objects while a later one has: passed over",
                extra={"packet": name, "prefix": prefix, "evidence": f"{table}:{evidence}"},
            )
            self._metrics.add(PACKET_GAP, table)
            record = CommitRecord(table, packet_id, state=self._state_key(table), missing=True)
            self._put(keys.commit_key(table, packet_id), record.to_json(), name, rows=0)
            return record, PacketOutcome(name, "passed_over")

        result, lines = self._transform(table, name, object_keys)
        state = None
        if result.state is not None:
            state = keys.state_key(table, packet_id)
            self._put(state, to_parquet(result.state), name, result.state.num_rows)
        # New dimension rows may complete facts that were quarantined for want of them.
        replay = result.state is not None and self._facts_waiting_for(result)
        record = self._write(
            name,
            CommitRecord(table, packet_id, state=state, replay_requested=replay),
            result,
            lambda output_table: keys.quarantine_key(output_table, table, packet_id),
            keys.commit_key(table, packet_id),
        )
        return record, self._count(name, record, result, lines)

    def _transform(self, table: str, name: str, object_keys: list[str]) -> tuple[Transformed, dict[str, int]]:
        """The packet's objects transformed; and the lines each object held."""
        source = SOURCES[table]
        states = {t: self._load_state(t) for t in STATE_INPUTS[table]}
        # Streamed: objects are opened one at a time and read in blocks.
        objects = ((key, self._source.open(key)) for key in object_keys)
        lines = dict.fromkeys(object_keys, 0)
        lines[ROWS_SEEN] = 0  # lines that are rows (or broken rows), not blank

        # No row may be newer than the object that carries it (a 9999 stamp would win
        # its key forever).
        written = {key: self._source.last_modified(key) for key in object_keys}
        drift = PacketDrift(source)

        def counted(blocks):
            for block in blocks:
                lines[block.key] += block.line_count
                parsed = self._seen(drift, parse_block(source, block, written[block.key]))
                lines[ROWS_SEEN] += parsed.rows.num_rows + sum(f.count for f in parsed.failures)
                yield parsed

        blocks = counted(read_blocks(objects))
        memory = None if source.keeps_state else self._memory(table)
        result = transform(source, blocks, states, name, memory)
        if drift:
            logger.warning(
                "schema drift: the source's columns differ from the declaration",
                extra={"packet": name, "table": table, **drift.to_log()},
            )
            self._metrics.add(SCHEMA_DRIFT, table)
        return result, lines

    def _memory(self, table: str) -> history.FactMemory:
        """The versions of `table`'s facts written so far: the memory as of the fact
        output packet its `produced` id names (so an uncommitted attempt's is not)."""
        source = SOURCES[table]
        manifest = self._memory_manifest(table, self._ids.read_packet_id(
            produced_parameter(self._prefix, source.primary_output)))
        if manifest is None:
            return history.FactMemory.empty(source)
        return history.FactMemory.load(source, manifest, self._read_once)

    def _read_once(self, key: str) -> bytes | None:
        """Read an object of the fact memory; a manifest (small, immutable, read up to
        four times per packet) once per invocation."""
        if key in self._immutable:
            return self._immutable[key]
        data = self._store.read(key)
        if data is not None and "_manifest_" in key:
            self._immutable[key] = data
        return data

    def _memory_manifest(self, table: str, produced: int) -> str | None:
        if produced == 0:
            return None
        key = keys.history_manifest_key(table, produced)
        if self._read_once(key) is None:
            # Facts written before the memory existed: it starts from here.
            logger.warning("no fact memory for the facts written so far: remembering from now on",
                           extra={"table": table, "manifest": key})
            return None
        return key

    def _objects(self, table: str, packet_id: int) -> list[str]:
        return [k for k in self._source.list_keys(keys.packet_prefix(table, packet_id)) if keys.is_packet_object(k)]

    def _later_packet_with_objects(self, table: str, packet_id: int, newest: int) -> int | None:
        """The first packet after `packet_id`, up to the newest one named, that has
        objects in the bucket: the only evidence that lets a packet be passed over.

        An event naming a packet is no evidence (a typo, a replayed test event, an
        early invoke): without objects of a later packet, the missing one may still
        arrive, so nothing is passed over. Found once per run for a run of missing
        packets (listed in ascending order, stopping at the first with objects).
        """
        known = self._evidence.get(table)
        if known is not None and known > packet_id:
            return known
        for later in range(packet_id + 1, newest + 1):
            if self._objects(table, later):
                self._evidence[table] = later
                return later
        return None

    def _count(
        self, name: str, record: CommitRecord, result: Transformed, lines: dict[str, int] | None = None
    ) -> PacketOutcome:
        lines = dict(lines) if lines is not None else None
        rows_seen = lines.pop(ROWS_SEEN) if lines is not None else None
        empty_objects = tuple(key for key, n in (lines or {}).items() if n == 0)
        empty_packet = rows_seen == 0
        if empty_objects:
            logger.warning("objects that hold no lines", extra={"packet": name, "keys": list(empty_objects[:10]),
                                                                "count": len(empty_objects)})
        if empty_packet:
            logger.warning("packet holds no rows: legal, but unusual",
                           extra={"packet": name, "objects": len(lines), "lines": sum(lines.values())})
        primary = SOURCES[record.table].primary_output if record.table in SOURCES else None
        for report in result.reports:
            if report.rows_in or (empty_packet and report.table == primary):
                log = report.to_log()
                if lines is not None and report.table == primary:
                    # The packet's objects, counted where its rows are.
                    log |= {"objects": len(lines), "empty_objects": len(empty_objects)}
                logger.info("validation report", extra={"validation": log})
        for memory in result.history:
            self._report_memory(name, memory)
        for out in record.outputs:
            self._metrics.add(ROWS_WRITTEN, out.table, out.rows)
        for report in result.reports:
            if report.rows_rejected:
                self._metrics.add(ROWS_REJECTED, report.table, report.rows_rejected)
        return PacketOutcome(
            name, "committed", record.outputs, record.quarantine, result.reports, empty_objects, empty_packet
        )

    def _report_memory(self, name: str, memory: history.HistoryUpdate) -> None:
        """Fact versions already written: re-sends skipped (INFO), changes reported."""
        if memory.resent:
            logger.info(
                "fact versions already written: skipped",
                extra={"packet": name, "table": memory.table, "rows_skipped": memory.resent,
                       "reason": "the same version with the same content was written by an earlier packet",
                       "ids": list(memory.resent_ids)},
            )
        if memory.mutated:
            logger.warning(
                "a fact version already written came back changed: written as the newest truth",
                extra={"packet": name, "table": memory.table, "rows": memory.mutated,
                       "ids": list(memory.mutated_ids[:100]), "ids_total": len(memory.mutated_ids)},
            )
            self._metrics.add(SILENT_MUTATION, memory.table, memory.mutated)

    def _write(
        self, name: str, record: CommitRecord, result: Transformed, quarantine_key, commit_key: str
    ) -> CommitRecord:
        """Steps 3 and 4: every output and quarantine object, then the commit record
        (`record` completed with them) that names them all."""
        outputs = []
        for out in result.outputs:
            n = self._ids.read_packet_id(produced_parameter(self._prefix, out.table)) + 1
            key = keys.output_key(out.table, n, out.updated)
            sha = self._put(key, out.body, name, out.rows)
            outputs.append(WrittenObject(out.table, key, out.rows, sha, n))
        quarantine = []
        for output_table, body in sorted(result.quarantine.items()):
            key = quarantine_key(output_table)
            lines = body.count(b"\n")
            quarantine.append(WrittenObject(output_table, key, lines, self._put(key, body, name, lines)))
        record = replace(record, outputs=tuple(outputs), quarantine=tuple(quarantine))
        manifests = tuple(m for m in (self._remember(name, u, outputs) for u in result.history) if m)
        if record.table == REPLAY:
            record = replace(record, memories=manifests)
        elif manifests:
            [manifest] = manifests  # a packet feeds one fact
            record = replace(record, state=manifest)
        self._put(commit_key, record.to_json(), name, len(outputs))
        return record

    def _remember(self, name: str, update: history.HistoryUpdate, outputs: list[WrittenObject]) -> str | None:
        """Step 3 for the fact memory: the segment of the versions just written and
        the manifest naming it, keyed by the fact output packet; returns the manifest
        (the memory after this packet) for the commit record."""
        fact_table = SOURCES[update.table].primary_output
        fact = next((o for o in outputs if o.table == fact_table), None)
        produced = self._ids.read_packet_id(produced_parameter(self._prefix, fact_table))
        if fact is None or not update.written.num_rows:
            return self._memory_manifest(update.table, produced)
        previous = self._memory_manifest(update.table, fact.packet - 1)
        for key, body, rows in history.advance(self._read_once, update.table, previous, fact.packet, update.written):
            self._put(key, body, name, rows)
        return keys.history_manifest_key(update.table, fact.packet)

    def _apply(self, record: CommitRecord) -> None:
        """Step 5: produced ids first, consumed last, so a crash in between is redone."""
        for out in record.outputs:
            self._ids.write_packet_id(produced_parameter(self._prefix, out.table), out.packet)
        if record.replay_requested:
            # Before consumed: a retry of this step must still find it to do.
            late = "late_" if record.late is not None else ""
            self._queue_replay(f"after_{record.table}_{late}packet_{record.packet}")
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

    # -- replaying quarantined facts ----------------------------------------------

    def _replay(self, replay: str) -> PacketOutcome:
        """Offer the quarantined facts again, against today's dimensions.

        Takes every live quarantine file of every fact (not taken by an earlier
        replay), feeds each fact's rows through the same fact path as a packet of its
        source, writes the facts that now pass as new output packets (one dim_date for
        all), and quarantines the rest again, with their new reasons, in one file per
        fact of this replay. Same commit steps as a packet, so a
        replay killed anywhere and run again writes every row exactly once.
        """
        name = f"replay:{replay}"
        commit_key = keys.replay_commit_key(replay)
        existing = self._store.read(commit_key)
        if existing is not None:
            record = CommitRecord.from_json(commit_key, existing)
            self._apply(record)
            return PacketOutcome(name, "recovered", record.outputs, record.quarantine)
        taken = self._live_quarantine(replay)
        parts, state_inputs = {}, []
        # The rows' own objects are long read: the quarantine files bound them instead.
        written = max((self._store.last_modified(k) for k in taken), default=None)
        # Each file is re-offered as an object of its own, line for line (a line not
        # re-offered stays blank), so a row quarantined again names the file and line
        # it was taken from. Both formats: the source row's fields plus `_reasons`, or
        # `_raw` (the exact text); `_object`/`_line` (where it first came from) are
        # bookkeeping, not fields, and so are not re-offered.
        for fact in FACTS:  # each fact's quarantined rows, fed back as rows of its source
            objects = [
                (key, io.BytesIO(self._reoffered(key)))
                for key in taken
                if key.startswith(keys.quarantine_prefix(fact.name))
            ]
            parts[fact.source] = _parsed(SOURCES[fact.source], objects, written)
            state_inputs += STATE_INPUTS[fact.source]
        states = {t: self._load_state(t) for t in dict.fromkeys(state_inputs)}
        result = replay_facts(parts, states, name, {f.source: self._memory(f.source) for f in FACTS})
        record = self._write(
            name,
            CommitRecord(REPLAY, 0, replayed=tuple(taken)),
            result,
            lambda output_table: keys.replay_quarantine_key(output_table, replay),
            commit_key,
        )
        self._apply(record)
        logger.info(
            "quarantined facts replayed",
            extra={"replay": name, "files": taken, "rows_written": {o.table: o.rows for o in record.outputs}},
        )
        return self._count(name, record, result)

    def _reoffered(self, key: str) -> bytes:
        """A quarantine file's rejected lines as source lines again, line for line."""
        lines = []
        for line in (self._store.read(key) or b"").splitlines():
            try:
                row = json.loads(line)
                reasons = row.pop("_reasons", None)
            except (ValueError, AttributeError, RecursionError) as exc:
                raise CorruptRecordError(f"quarantine file {key} has a line that is not JSON: {exc}") from exc
            for bookkeeping in (WAITS_FOR, "_object", "_line", "_length"):
                row.pop(bookkeeping, None)
            if reasons is None:
                lines.append(b"")
            elif "_raw" in row:
                lines.append(row["_raw"].encode())
            else:
                lines.append(json.dumps(row, ensure_ascii=False).encode())
        return b"\n".join(lines) + b"\n" if lines else b""

    def _facts_waiting_for(self, result: Transformed) -> bool:
        """Whether a live quarantined fact waits for a dimension row this packet emits.

        Only then is a replay worth it: facts waiting for a key that never comes are
        not re-offered at every dimension packet. Reads rejected rows only.
        """
        emitted = set()
        for out in result.outputs:
            if out.table in WAITED_FOR:
                key = pq.read_table(io.BytesIO(out.body), columns=[ARROW_SCHEMAS[out.table].names[0]])
                emitted |= {(WAITED_FOR[out.table], k) for k in key.column(0).to_pylist()}
        if not emitted:
            return False
        marker = f'"{WAITS_FOR}"'.encode()
        for file_key in self._live_quarantine(None):
            for line in (self._store.read(file_key) or b"").splitlines():
                if marker in line:
                    waits = json.loads(line)[WAITS_FOR]
                    if any((dimension, key) in emitted for dimension, key in waits.items()):
                        return True
        return False

    def _queue_replay(self, replay: str) -> None:
        """Queue a replay right after the pending record at hand (so it sees all of that
        record's packets, and runs before any later record, whatever arrived meanwhile),
        unless one is queued there already or this one ran."""
        seq, _ = keys.parse_pending_key(self._current)
        key = keys.pending_key(seq, replay_after=True)
        if self._store.read(key) is not None or self._store.read(keys.replay_commit_key(replay)) is not None:
            return
        self._store.put_if_absent(key, json.dumps({"packets": [], REPLAY: replay}).encode(), {})
        logger.info("facts wait for dimensions that just arrived: replay queued", extra={"replay": replay})

    def _live_quarantine(self, replay: str | None) -> list[str]:
        """Fact quarantine files no earlier replay has taken, in key order; never this
        replay's own (a killed attempt may have written it already)."""
        taken = set()
        for key in self._store.list_keys(keys.REPLAY_COMMITS):
            record = CommitRecord.from_json(key, self._store.read(key) or b"")
            taken.update(record.replayed or ())
        own = {keys.replay_quarantine_key(t, replay) for t in REPLAYED_TABLES} if replay else set()
        return [
            k
            for table in REPLAYED_TABLES
            for k in self._store.list_keys(keys.quarantine_prefix(table))
            if k not in taken and k not in own
        ]

    # -- helpers ------------------------------------------------------------------

    @staticmethod
    def _seen(drift: PacketDrift, parsed):
        drift.add(parsed.unknown_columns, parsed.failures)
        return parsed

    def _put(self, key: str, body: bytes, source: str, rows: int) -> str:
        sha = hashlib.sha256(body).hexdigest()
        self._store.put_if_absent(key, body, {"source": source, "rows": str(rows), "sha256": sha})
        return sha

    def _consumed(self, table: str) -> int:
        return self._ids.read_packet_id(consumed_parameter(self._prefix, table))

    def _state_key(self, table: str) -> str | None:
        """The key of `table`'s committed state snapshot, from its last commit record."""
        if not SOURCES[table].keeps_state:
            return None
        consumed = self._consumed(table)
        if consumed == 0:
            return None
        # A late packet processed since the last commit of the table holds its state.
        late = [r for r in self._late_records(table) if r.late["after"] == consumed]
        if late:
            return max(late, key=lambda r: r.late["seq"]).state
        commit_key = keys.commit_key(table, consumed)
        data = self._store.read(commit_key)
        if data is None:
            raise CorruptRecordError(
                f"{consumed_parameter(self._prefix, table)} is {consumed} but {commit_key} does not exist"
            )
        return CommitRecord.from_json(commit_key, data).state

    def _load_state(self, table: str) -> pa.Table:
        key = self._state_key(table)
        if key is None:
            return empty(SOURCES[table])
        data = self._store.read(key)
        if data is None:
            raise CorruptRecordError(f"state snapshot {key} named by a commit record does not exist")
        return from_parquet(data).cast(coerced_schema(SOURCES[table]))


def _parsed(source, objects, written):
    """Replayed rows as parsed blocks of `source`; `written` bounds their timestamps."""
    return (parse_block(source, b, written) for b in read_blocks(objects))


def request_replay(store: ProcessedStore) -> int:
    """Ask for a replay of the quarantined facts (an operator's); returns its number.

    The number is claimed with a conditional put under _replays/ (never reused), then
    a pending record asks for it, so the next invocation runs it in turn, after the
    packets recorded before it, with the same commit steps as a packet.
    """
    claimed = [keys.parse_replay_claim(k) for k in store.list_keys(keys.REPLAY_CLAIMS)]
    replay = max((n for n in claimed if n is not None), default=0) + 1
    while not _claim(store, keys.replay_claim_key(replay), {"replay": replay}):
        replay += 1
    queue_replay(store, keys.replay_id(replay))
    return replay


def queue_replay(store: ProcessedStore, replay: str) -> None:
    """A pending record asking for replay `replay`, after every record there is."""
    _queue(store, {"packets": [], REPLAY: replay})


def queue_late(store: ProcessedStore, table: str, packet_id: int) -> str:
    """A pending record asking for late packet (table, packet_id), after every record
    there is; returns its key."""
    return _queue(store, {"packets": [], LATE: {"table": table, "id": packet_id}})


def committed_state_key(store: ProcessedStore, packet_ids: PacketIds, ssm_prefix: str, table: str) -> str | None:
    """The key of `table`'s committed state (late packets included), for operators."""
    return Pipeline(None, store, packet_ids, ssm_prefix, None)._state_key(table)  # type: ignore[arg-type]


def _queue(store: ProcessedStore, body: dict) -> str:
    seqs = [keys.parse_pending_key(k) for k in store.list_keys(keys.PENDING)]
    seq = max((s[0] for s in seqs if s is not None), default=0) + 1
    while not _claim(store, keys.pending_key(seq), body):
        seq += 1  # an invocation took that number meanwhile: take the next
    return keys.pending_key(seq)


def _claim(store: ProcessedStore, key: str, body: dict) -> bool:
    try:
        return store.put_if_absent(key, json.dumps(body).encode(), {})
    except FileExistsError:
        return False
