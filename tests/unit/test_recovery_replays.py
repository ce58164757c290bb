"""docs/design.md#commit-steps with waits in it: a wait, a correction while waiting, a
second wait of a changed version, then the replay the late key queues, killed after
every write of that invocation, another event, then the retry. Byte for byte what an
undisturbed run produces: every version once, the newest content last."""

from __future__ import annotations

import pytest

from runtime import keys
from runtime.waits import open_waits
from tests.support.backends import MemoryBackend
from tests.support.harness import DIMENSIONS, sales_order, staff
from tests.support.kill_sweep import Arrive, Invoke, KillSweep, Scenario, dimensions
from tests.support.sweep import SAMPLE

V = "2023-02-01T10:00:00"
SWEEP = KillSweep(
    Scenario(
        seed=(
            dimensions(),
            Invoke(tuple(f"{table}:1" for table in DIMENSIONS)),
            Arrive((
                ("sales_order", 1, [sales_order(7, updated=V, staff_id=21, units_sold=5),
                                    sales_order(8, updated=V, staff_id=21, units_sold=5),
                                    sales_order(9, staff_id=22)]),  # 22 never comes: stays waiting
                ("sales_order", 2, [sales_order(7, updated=V, staff_id=1, units_sold=5)]),  # the correction
                ("sales_order", 3, [sales_order(8, updated=V, staff_id=21, units_sold=7)]),  # changed, waits too
            )),
            Invoke(("sales_order:1", "sales_order:2", "sales_order:3")),
            Arrive((("staff", 2, [staff(21, 1, "Ann", "Lee")]), ("sales_order", 4, [sales_order(10)]))),
        ),
        # The arrival's replay killed after any write; another event first (it finishes the
        # killed invocation's work), then Lambda's retry.
        steps=(Invoke(("staff:2",)), Invoke(("sales_order:4",))),
        killed=(0,),
        sample=SAMPLE,
    ),
    MemoryBackend(),
)


def test_the_undisturbed_run_writes_the_newest_content_last():
    h, writes = SWEEP.reference.world, SWEEP.reference.writes[0]
    assert h.processed.list_keys(keys.REPLAY_COMMITS) == [keys.replay_commit_key("after_staff_packet_2")]
    rows = [(r["sales_order_id"], r["sales_staff_id"], r["units_sold"]) for r in h.rows("fact_sales_order")]
    assert [r for r in rows if r[0] == 7] == [(7, 1, 5)]  # packet 1's stale row never written
    assert [r for r in rows if r[0] == 8] == [(8, 21, 5), (8, 21, 7)]  # older first, newest last
    assert [(w.packet, w.waits_for) for w in open_waits(h.processed)] == [(1, {"staff": 22})]
    assert len(writes) > 5


@pytest.mark.parametrize("point", SWEEP.points(), ids=str)
def test_the_replay_killed_after_any_write_then_another_event_then_the_retry(point):
    SWEEP.check(point)
