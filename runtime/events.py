"""The invocation event contract (DESIGN §2) and its checks.

`{"packets": [{"table": "sales_order", "id": 12}, ...]}`. A malformed event is
rejected as a whole, with every problem named, before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.errors import InvalidEventError
from runtime.tables import DEPENDENCY_ORDER, SOURCES

# Bounds that no real ingestion run reaches; they keep absurd events out.
MAX_PACKETS = 1000
MAX_PACKET_ID = 2**31 - 1  # the SSM value and output numbers stay int32-sized


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
    """Check the event against the contract; raise InvalidEventError naming each problem."""
    if not isinstance(event, dict):
        raise InvalidEventError(
            f"event must be a JSON object with a 'packets' list, got {type(event).__name__}"
        )
    extra = sorted(set(event) - {"packets"})
    problems = [f"unexpected key {k!r} in event" for k in extra]
    packets = event.get("packets")
    if "packets" not in event:
        problems.append("event has no 'packets' key")
    elif not isinstance(packets, list):
        problems.append(f"'packets' must be a list, got {type(packets).__name__}")
    elif len(packets) > MAX_PACKETS:
        problems.append(f"'packets' names {len(packets)} packets, more than {MAX_PACKETS}")
    if problems:
        raise InvalidEventError("; ".join(problems))

    refs: list[PacketRef] = []
    for i, entry in enumerate(packets):
        where = f"packets[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be an object, got {type(entry).__name__}")
            continue
        missing = sorted({"table", "id"} - set(entry))
        extra = sorted(set(entry) - {"table", "id"})
        problems += [f"{where} has no {k!r}" for k in missing]
        problems += [f"{where} has unexpected key {k!r}" for k in extra]
        table, packet_id = entry.get("table"), entry.get("id")
        if "table" in entry:
            if not isinstance(table, str):
                problems.append(f"{where}.table must be a string, got {type(table).__name__}")
            elif table not in SOURCES:
                problems.append(f"{where}.table {table[:64]!r} is not a known totesys table")
        if "id" in entry:
            # bool is an int subclass in Python, but `true` is not a packet number.
            if type(packet_id) is not int:
                problems.append(
                    f"{where}.id must be a positive integer, got {type(packet_id).__name__}"
                )
            elif not 1 <= packet_id <= MAX_PACKET_ID:
                problems.append(f"{where}.id must be between 1 and {MAX_PACKET_ID}, got {packet_id}")
        if not missing and not extra and not any(p.startswith(where + ".") for p in problems):
            refs.append(PacketRef(table, packet_id))

    seen: set[PacketRef] = set()
    for ref in refs:
        if ref in seen:
            problems.append(f"packet {ref} is named more than once")
        seen.add(ref)
    if problems:
        raise InvalidEventError("invalid event: " + "; ".join(problems))

    return Event(tuple(sorted(refs, key=lambda r: r.sort_key)))
