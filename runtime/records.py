"""The records a run writes and returns: what docs/design.md#ordering step 4 commits, and what a
run reports.

A CommitRecord is written once per packet (step 4) and read back by every retry, by
later packets (the committed state) and by operators, so its JSON bytes are a stored
format: a retry must produce the very same bytes, and a record written by an earlier
version must still parse.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import NamedTuple

from runtime.errors import CorruptRecordError
from runtime.events import PacketRef


class CommitSpace(NamedTuple):
    """Where one commit writes (docs/design.md#commit-steps): its name in logs and
    metadata, its commit record, its quarantine files and its state snapshot. A packet,
    a late packet and a replay each have their own, and commit through the same steps."""

    name: str
    record_key: str
    quarantine_key: Callable[[str], str]  # output table -> its quarantine file
    state_key: str | None = None  # a dimension packet's new state; None: keeps none
    # Names an earlier version wrote this record under: a record found there is finished.
    earlier_record_keys: tuple[str, ...] = ()

    def find_record(self, read: Callable[[str], bytes | None]) -> tuple[str, bytes] | None:
        """Step 1: the record already written, under its key or an earlier name, or None."""
        for key in (self.record_key, *self.earlier_record_keys):
            data = read(key)
            if data is not None:
                return key, data
        return None


class PacketLines(NamedTuple):
    """What a packet's objects held, as the reading counted them: the lines of each
    object, and how many of all those lines were not blank (rows, or broken rows)."""

    per_object: dict[str, int]
    rows: int


class Computed(NamedTuple):
    """Step 2 of a commit: the record's own fields, what the transform made, and the
    lines its objects held (None where there are no source objects: a replay).
    `result` None commits the record alone (a packet passed over)."""

    record: "CommitRecord"
    result: object | None  # runtime.transform.Transformed (not imported: records stay low)
    lines: PacketLines | None = None


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
    # Stopped between two packets before the timeout (docs/design.md#backlog): what
    # is left pending, finished by the next invocation.
    left_pending: list[str] | None = None

    def rows_written(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            for out in outcome.outputs:
                totals[out.table] = totals.get(out.table, 0) + out.rows
        return totals

    def empty_packets(self) -> list[str]:
        return [o.packet for o in self.outcomes if o.empty]

    def rows_rejected(self) -> dict[str, int]:
        """Rows that need a fix at the source (waiting rows are not among them)."""
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            for report in outcome.reports:
                if report.rows_rejected - report.rows_waiting:
                    totals[report.table] = totals.get(report.table, 0) + report.rows_rejected - report.rows_waiting
        return totals

    def rows_waiting(self) -> dict[str, int]:
        """Rows quarantined only for a dimension key that has not arrived yet."""
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            for report in outcome.reports:
                if report.rows_waiting:
                    totals[report.table] = totals.get(report.table, 0) + report.rows_waiting
        return totals
