"""What a late packet remembered is known to the packets and replays after it
(docs/design.md#fact-memory, #waits-and-replays, #input-layout): a late packet that
only re-sends versions records them under its own commit record in `_commits/late/`,
and the fact memory of the next packet or replay reads them from there."""

from __future__ import annotations

import json

import pytest

from runtime import keys
from runtime.operations import late
from runtime.waits import open_waits
from tests.support.harness import Harness, sales_order, staff

V = "2023-02-01T10:00:00"


@pytest.fixture
def h() -> Harness:
    h = Harness()
    h.invoke(*h.upload_dimensions())
    return h


def versions_of(h: Harness, order: int) -> list[tuple[int, int]]:
    return [(r["sales_staff_id"], r["units_sold"]) for r in h.rows("fact_sales_order") if r["sales_order_id"] == order]


def mutations(h: Harness) -> float:
    return sum(m.get("SilentMutation", 0) for m in h.metrics() if m["table"] == "sales_order")


def _late_resend(h: Harness) -> None:
    """Order 7 written by packet 1; packet 2's change of it waits for staff 21; packet 3
    is passed over (packet 4 is there); then packet 3 arrives, re-sending packet 1's
    order 7, and is processed late: it writes nothing, only remembers the re-send."""
    h.upload("sales_order", 1, [sales_order(7, updated=V, units_sold=5)])
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=21, units_sold=6)])
    h.upload("sales_order", 4, [sales_order(8)])
    h.invoke("sales_order:1", "sales_order:2", "sales_order:4")
    assert json.loads(h.processed.read(keys.commit_key("sales_order", 3)))["missing"] is True
    h.upload("sales_order", 3, [sales_order(7, updated=V, units_sold=5)])
    late(h.processed, h.ingestion, "sales_order", 3)
    summary = h.invoke()
    assert [(o.packet, o.status) for o in summary.outcomes] == [("sales_order:3", "late")]
    record = json.loads(h.processed.read(keys.late_commit_key("sales_order", 3)))
    assert record["outputs"] == [] and record["state"] == keys.history_then_key("sales_order", 2, 3)


def test_a_late_packets_re_send_supersedes_an_earlier_waiting_change(h):
    _late_resend(h)
    h.upload("staff", 2, [staff(21, 1, "Ann", "Lee", updated="2023-03-01T00:00:00")])
    h.invoke("staff:2")
    # Packet 3 sent order 7 last (packet 1's content): packet 2's waiting row is older.
    assert versions_of(h, 7) == [(1, 5)]
    assert mutations(h) == 0
    assert open_waits(h.processed) == []
    h.check_invariants()


def test_what_a_late_packet_remembered_carries_on_through_later_re_sends(h):
    """Packet 5 re-sends only (a memory of its own on top of the current one): the late
    packet's re-send is still known to the replay after it."""
    _late_resend(h)
    h.upload("sales_order", 5, [sales_order(8)])
    h.invoke("sales_order:5")
    record = json.loads(h.processed.read(keys.commit_key("sales_order", 5)))
    assert record["state"] == keys.history_then_key("sales_order", 2, 5)
    h.upload("staff", 2, [staff(21, 1, "Ann", "Lee", updated="2023-03-01T00:00:00")])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(1, 5)]
    h.check_invariants()


def test_a_change_of_what_a_late_packet_left_waiting_is_reported_when_written(h):
    """A late packet's row waits for staff 21 (nothing written, only remembered);
    packet 4 writes that version with other content: one SilentMutation, and the late
    row is superseded when staff 21 arrives."""
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 3, [sales_order(8)])
    h.invoke("sales_order:1", "sales_order:3")  # 2 passed over
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=21, units_sold=5)])
    late(h.processed, h.ingestion, "sales_order", 2)
    h.invoke()
    assert [w.packet for w in open_waits(h.processed)] == [2]
    h.upload("sales_order", 4, [sales_order(7, updated=V, units_sold=9)])
    h.invoke("sales_order:4")
    assert mutations(h) == 1
    h.upload("staff", 2, [staff(21, 1, "Ann", "Lee", updated="2023-03-01T00:00:00")])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(1, 9)] and mutations(h) == 1
    assert open_waits(h.processed) == []
    h.check_invariants()
