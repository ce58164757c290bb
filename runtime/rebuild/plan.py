"""The rebuild's plan: the history of every source table, and the order it is
committed in (docs/design.md#rebuild).

Listed once, from the ingestion bucket, and kept in the target (`_rebuild/plan.json`),
so a resumed rebuild works on the same history even though the live ingestion goes on
adding packets meanwhile (the live pipeline catches up on those after the switch-over).

The order is the live order of docs/design.md#ordering: packet k of every table before
packet k + 1, and within one k the dependency order of runtime/tables.py. A packet id
with no objects below a table's last one is in the order too: the commit passes it over
on the evidence of the later packet, as the live pipeline does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from runtime import keys
from runtime.events import PacketRef
from runtime.ports import IngestionSource
from runtime.tables import DEPENDENCY_ORDER, SOURCE_TABLES, SOURCES

REBUILD = "_rebuild/"
PLAN_KEY = f"{REBUILD}plan.json"
ITEMS_KEY = f"{REBUILD}items.json"  # the fact packets, as the Distributed Map reads them
_PACKET = re.compile(r"^([a-z_]+)/\1_packet_(\d+)_")


@dataclass(frozen=True)
class Plan:
    """Per source table, the packet ids that have objects (ascending)."""

    packets: dict[str, tuple[int, ...]]

    def last(self, table: str) -> int:
        found = self.packets.get(table, ())
        return found[-1] if found else 0

    def order(self, dimensions: bool) -> list[PacketRef]:
        """Every packet id up to each table's last, round by round (k, then the
        dependency order): the dimension sources' or the fact sources'."""
        tables = [t.name for t in SOURCE_TABLES if t.keeps_state == dimensions]
        rounds = max((self.last(t) for t in tables), default=0)
        return [
            PacketRef(t, k)
            for k in range(1, rounds + 1)
            for t in sorted(tables, key=DEPENDENCY_ORDER.__getitem__)
            if k <= self.last(t)
        ]

    def fact_items(self) -> list[dict]:
        """The fact packets that have objects: one Distributed Map item each."""
        return [{"table": r.table, "id": r.id} for r in self.order(dimensions=False)
                if r.id in self.packets[r.table]]

    def to_json(self) -> bytes:
        return json.dumps({"packets": {t: list(ids) for t, ids in self.packets.items()}},
                          sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Plan:
        raw = json.loads(data)["packets"]
        return cls({t: tuple(ids) for t, ids in raw.items() if t in SOURCES})


def list_history(source: IngestionSource) -> Plan:
    """Every packet of every source table that has at least one packet object."""
    packets = {}
    for table in SOURCE_TABLES:
        ids = set()
        for key in source.list_keys(f"{table.name}/"):
            match = _PACKET.match(key)
            if match and match.group(1) == table.name and keys.is_packet_object(key):
                ids.add(int(match.group(2)))
        packets[table.name] = tuple(sorted(ids))
    return Plan(packets)
