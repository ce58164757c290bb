"""Facts waiting for a dimension key (docs/design.md#waits-and-replays): where they are,
in which order a replay offers them, and which have waited too long.

A fact row whose dimension key has not arrived is quarantined with `_waits_for` (the
keys it needs). It stays an open wait until a replay takes the file it sits in: then it
is resolved exactly once (written, skipped as a re-send or as superseded by a later
packet, rejected for a reason of its own) or, its key still missing, written again to
that replay's quarantine file with where it came from (`_object`, `_line`, `_packet`)
and the quarantine file it started waiting in (`_waiting_in`: its LastModified is when,
kept as a key so a retry writes the very same bytes), and so stays open there.

Reads only the processed bucket's quarantine and replay records; no clock of its own
(the caller passes `now`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from runtime import keys
from runtime.errors import CorruptRecordError
from runtime.observability import Metrics, logger
from runtime.ports import ProcessedStore
from runtime.records import CommitRecord
from runtime.tables import FACTS
from runtime.validation import LINE_NUMBER, OBJECT, PACKET_NUMBER, RAW, WAITING_IN, WAITS_FOR

# The outputs whose waiting rows a replay offers again: every fact (runtime/tables.py).
REPLAYED_TABLES: tuple[str, ...] = tuple(f.name for f in FACTS)
PACKET = PACKET_NUMBER  # in a re-quarantined waiting row: the source packet it came from
FIRST = WAITING_IN  # ... and the quarantine file it started waiting in
# Bookkeeping a quarantine line adds to a source row: never offered as a field.
BOOKKEEPING = (WAITS_FOR, OBJECT, LINE_NUMBER, "_length", "_reasons", PACKET, FIRST)
DEFAULT_ALARM_HOURS = 24.0
_EXAMPLE_KEYS = 20


@dataclass(frozen=True)
class Wait:
    """One open wait: a quarantined fact row and what it needs."""

    table: str  # the fact output table
    file: str  # the quarantine file it sits in
    packet: int  # the source packet it came from (0: not known, older files)
    origin: str  # the object it came from
    line: int  # its line there
    waits_for: dict  # {dimension source table: the key it needs}
    first: str  # the quarantine file it started waiting in
    since: datetime  # when it started waiting (that file's LastModified)
    row: dict  # the source row's own fields (`_raw`: its exact text, kept raw)

    @property
    def text(self) -> bytes:
        """The source line to offer again."""
        if RAW in self.row:
            return str(self.row[RAW]).encode()
        return json.dumps(self.row, ensure_ascii=False).encode()

    def to_view(self) -> dict:
        """What an operator sees of it."""
        return {"table": self.table, "packet": self.packet, "object": self.origin, "line": self.line,
                "waits_for": self.waits_for, "since": self.since.isoformat(), "file": self.file}


def live_quarantine(store: ProcessedStore, replay: str | None = None) -> list[str]:
    """Fact quarantine files no replay has taken; never replay `replay`'s own (a
    killed attempt may have written it already)."""
    taken = set()
    for key in store.list_keys(keys.REPLAY_COMMITS):
        record = CommitRecord.from_json(key, store.read(key) or b"")
        taken.update(record.replayed or ())
    own = {keys.replay_quarantine_key(t, replay) for t in REPLAYED_TABLES} if replay else set()
    return [
        k
        for table in REPLAYED_TABLES
        for k in store.list_keys(keys.quarantine_prefix(table))
        if k not in taken and k not in own
    ]


def waits_in(store: ProcessedStore, files: list[str]) -> list[Wait]:
    """The waiting rows of quarantine `files`, in the order a replay offers them: by
    fact, then source packet (as a number, whatever the file names), then object and
    line. Rows rejected for a reason of their own are no waits: they are not offered."""
    waits = []
    written: dict[str, datetime] = {}  # LastModified of each file a wait started in
    marker = f'"{WAITS_FOR}"'.encode()
    for file in files:
        table = file.removeprefix(keys.QUARANTINE).split("/", 1)[0]
        data = store.read(file) or b""
        if marker not in data:
            continue
        for line in data.splitlines():
            if marker not in line:
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise CorruptRecordError(f"quarantine file {file} has a line that is not JSON: {exc}") from exc
            needs = row.get(WAITS_FOR) if isinstance(row, dict) else None
            if not isinstance(needs, dict):
                continue  # the marker inside a value, not the key: no wait
            origin = str(row.get(OBJECT, file))
            packet = row.get(PACKET)
            if not isinstance(packet, int):
                packet = keys.packet_of_object(origin) or 0
            first = row.get(FIRST)
            first = first if isinstance(first, str) and first.startswith(keys.QUARANTINE) else file
            if first not in written:  # quarantine files are immutable and kept
                written[first] = store.last_modified(first)
            fields = {k: v for k, v in row.items() if k not in BOOKKEEPING}
            line_number = row.get(LINE_NUMBER)
            line_number = line_number if isinstance(line_number, int) else 0
            waits.append(Wait(table, file, packet, origin, line_number, needs, first, written[first], fields))
    return sorted(waits, key=lambda w: (REPLAYED_TABLES.index(w.table), w.packet, w.origin, w.line))


def open_waits(store: ProcessedStore) -> list[Wait]:
    """Every wait still open (for the operator views): resolved ones are not listed."""
    return waits_in(store, live_quarantine(store))


@dataclass
class WaitWatch:
    """Reports waits older than `max_age_hours` (docs/design.md#observability): by then
    the source is wrong, not late. Once per invocation and fact table: an ERROR naming
    the missing keys and a `RowsWaiting` document with wait=overdue, for each fact table
    with open waits (0 while they are younger than the age, so the alarm clears)."""

    metrics: Metrics | None
    max_age_hours: float = DEFAULT_ALARM_HOURS

    def report(self, waits: list[Wait], now: datetime | None = None) -> dict[str, int]:
        now = now or datetime.now(timezone.utc)
        limit = now - timedelta(hours=self.max_age_hours)
        counts = {}
        for table in REPLAYED_TABLES:
            if not any(w.table == table for w in waits):
                continue  # nothing waits: no document (the alarm sees no data, not a breach)
            late = [w for w in waits if w.table == table and w.since < limit]
            counts[table] = len(late)
            if self.metrics is None or self.metrics.overdue_waits.get(table) == len(late):
                continue
            if late:
                missing: dict[str, list] = {}
                for wait in late:
                    for dimension, key in wait.waits_for.items():
                        if key not in missing.setdefault(dimension, []):
                            missing[dimension].append(key)
                logger.error(
                    "facts have waited longer than the alarm age for dimension keys that never came",
                    extra={"table": table, "rows_overdue": len(late), "max_age_hours": self.max_age_hours,
                           "oldest_since": min(w.since for w in late).isoformat(),
                           "missing": {d: k[:_EXAMPLE_KEYS] for d, k in sorted(missing.items())},
                           "packets": sorted({w.packet for w in late})[:_EXAMPLE_KEYS]},
                )
            self.metrics.set_overdue_waits(table, len(late))
        return counts
