"""docs/design.md#commit-steps with waits in it: a wait, a correction while waiting, a
second wait of a changed version, then the replay the late key queues, killed after
every write of that invocation, another event, then the retry. Byte for byte what an
undisturbed run produces: every version once, the newest content last."""

from __future__ import annotations

import pytest

from runtime import keys
from runtime.waits import open_waits
from tests.support.fakes import SimulatedKill
from tests.support.harness import Harness, sales_order, staff
from tests.support.sweep import kill_points as sampled
from tests.unit.test_recovery import final_state

V = "2023-02-01T10:00:00"
ARRIVAL = ("staff:2",)
OTHER = ("sales_order:4",)


def prepared() -> Harness:
    h = Harness()
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(7, updated=V, staff_id=21, units_sold=5),
                                sales_order(8, updated=V, staff_id=21, units_sold=5),
                                sales_order(9, staff_id=22)])  # 22 never comes: stays waiting
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=1, units_sold=5)])  # the correction
    h.upload("sales_order", 3, [sales_order(8, updated=V, staff_id=21, units_sold=7)])  # changed, waits too
    h.invoke("sales_order:1", "sales_order:2", "sales_order:3")
    h.upload("staff", 2, [staff(21, 1, "Ann", "Lee")])
    h.upload("sales_order", 4, [sales_order(10)])
    return h


@pytest.fixture(scope="module")
def reference():
    h = prepared()
    before = h.writes.count
    h.invoke(*ARRIVAL)
    writes = h.writes.count - before
    h.invoke(*OTHER)
    h.check_invariants()
    return final_state(h), writes, h


def test_the_undisturbed_run_writes_the_newest_content_last(reference):
    _, writes, h = reference
    assert h.processed.list_keys(keys.REPLAY_COMMITS) == [keys.replay_commit_key("after_staff_packet_2")]
    rows = [(r["sales_order_id"], r["sales_staff_id"], r["units_sold"]) for r in h.rows("fact_sales_order")]
    assert [r for r in rows if r[0] == 7] == [(7, 1, 5)]  # packet 1's stale row never written
    assert [r for r in rows if r[0] == 8] == [(8, 21, 5), (8, 21, 7)]  # older first, newest last
    assert [(w.packet, w.waits_for) for w in open_waits(h.processed)] == [(1, {"staff": 22})]
    assert writes > 5


def kill_points() -> list[int]:
    h = prepared()
    before = h.writes.count
    h.invoke(*ARRIVAL)
    return sampled(range(1, h.writes.count - before + 1))  # every one with KILL_SWEEP=full


@pytest.mark.parametrize("kill_after", kill_points())
def test_the_replay_killed_after_any_write_then_another_event_then_the_retry(reference, kill_after):
    expected, _, _ = reference
    h = prepared()
    h.writes.kill_after = h.writes.count + kill_after
    with pytest.raises(SimulatedKill):
        h.invoke(*ARRIVAL)
    h.invoke(*OTHER)  # another event first: it finishes the killed invocation's work
    h.invoke(*ARRIVAL)  # Lambda's retry
    h.check_invariants()
    assert final_state(h) == expected
