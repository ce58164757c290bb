"""The invocation event contract (docs/design.md#event) and its checks.

`{"packets": [{"table": "sales_order", "id": 12}, ...]}`. A malformed event is
rejected as a whole, with every problem named, before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.errors import InvalidEventError, got, shown
from runtime.tables import DEPENDENCY_ORDER, SOURCES

# Bounds that no real ingestion run reaches; they keep absurd events out.
MAX_PACKETS = 1000
MAX_PACKET_ID = 2**31 - 1  # the SSM value and output numbers stay int32-sized
MAX_PROBLEMS = 5  # named in one message; the rest are counted


@dataclass(frozen=True, order=True)
class PacketRef:
    """One ingestion packet: the `id`-th packet of source table `table`."""

    table: str
    id: int

    def __str__(self) -> str:
        return f"{self.table}:{self.id}"

    @property
    def sort_key(self) -> tuple[int, int]:
        """Dependency order of tables, then ascending id."""
        return DEPENDENCY_ORDER[self.table], self.id


@dataclass(frozen=True)
class Event:
    packets: tuple[PacketRef, ...]  # in processing order


def parse_event(event: Any) -> Event:
    """Check the event against the contract; raise InvalidEventError naming each problem.

    Any input at all gets this typed error and a bounded message (docs/design.md#event):
    nothing here converts, compares, hashes or prints a value before its type is
    known to be a plain JSON one, and every value quoted goes through `shown`.
    """
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object with a 'packets' list, got {got(event)}")
    problems = _Problems()
    names = dict.keys(event)
    for key in _unexpected(names, ("packets",)):
        problems.add(f"unexpected key {shown(key)} in event")
    packets = dict.get(event, "packets")
    if not _has(names, "packets"):
        problems.add("event has no 'packets' key")
    elif not isinstance(packets, list):
        problems.add(f"'packets' must be a list, got {got(packets)}")
    elif list.__len__(packets) > MAX_PACKETS:
        problems.add(f"'packets' names {list.__len__(packets):,} packets, more than {MAX_PACKETS}")
    problems.raise_if_any("")

    refs: list[PacketRef] = []
    for i, entry in enumerate(list.__iter__(packets)):
        where = f"packets[{i}]"
        if not isinstance(entry, dict):
            problems.add(f"{where} must be an object, got {got(entry)}")
            continue
        fields = dict.keys(entry)
        missing = [k for k in ("table", "id") if not _has(fields, k)]
        extra = _unexpected(fields, ("table", "id"))
        good = not missing and not extra
        problems.extend(f"{where} has no {k!r}" for k in missing)
        problems.extend(f"{where} has unexpected key {shown(k)}" for k in extra)
        table, packet_id = dict.get(entry, "table"), dict.get(entry, "id")
        if "table" not in missing:
            if type(table) is not str:
                problems.add(f"{where}.table must be a string, got {got(table)}")
                good = False
            elif table not in SOURCES:
                problems.add(f"{where}.table {shown(table)} is not a known totesys table")
                good = False
        if "id" not in missing:
            # bool is an int subclass in Python, but `true` is not a packet number.
            if type(packet_id) is not int:
                problems.add(f"{where}.id must be a positive integer, got {got(packet_id)}")
                good = False
            elif not 1 <= packet_id <= MAX_PACKET_ID:
                problems.add(f"{where}.id must be between 1 and {MAX_PACKET_ID}, got {shown(packet_id)}")
                good = False
        if good:
            refs.append(PacketRef(table, packet_id))

    seen: set[PacketRef] = set()
    for ref in refs:
        if ref in seen:
            problems.add(f"packet {ref} is named more than once")
        seen.add(ref)
    problems.raise_if_any("invalid event: ")

    return Event(tuple(sorted(refs, key=lambda r: r.sort_key)))


def _has(names: Any, name: str) -> bool:
    """Whether a plain-string key `name` is among `names` (no other key's __eq__ runs)."""
    return any(type(k) is str and k == name for k in names)


def _unexpected(names: Any, allowed: tuple[str, ...]) -> list:
    """The keys not allowed, in a stable order that never compares two keys."""
    extra = [k for k in names if not (type(k) is str and k in allowed)]
    return sorted(extra, key=shown)


class _Problems:
    """What is wrong, at most MAX_PROBLEMS of them named (the message stays bounded)."""

    def __init__(self) -> None:
        self.named: list[str] = []
        self.count = 0

    def add(self, problem: str) -> None:
        self.count += 1
        if len(self.named) < MAX_PROBLEMS:
            self.named.append(problem)

    def extend(self, problems) -> None:
        for problem in problems:
            self.add(problem)

    def raise_if_any(self, lead: str) -> None:
        if not self.count:
            return
        more = self.count - len(self.named)
        tail = f"; and {more:,} more problems" if more else ""
        raise InvalidEventError(lead + "; ".join(self.named) + tail)
