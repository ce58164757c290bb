"""Equal results (docs/design.md#rebuild), over generated histories: dimension changes,
facts waiting for dimensions that come later, re-sends, silent mutations and packets
with no objects. A rebuild, with its items finishing in any order and steps killed and
retried midway, gives the warehouse the live pipeline gives processing the same history
packet by packet."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tests.support.harness import DIMENSIONS, Harness, design, sales_order, staff
from tests.unit.test_rebuild import TARGET_PREFIX, Rebuild, assert_gapless, assert_same_warehouse

T0 = datetime(2022, 11, 3, 14, 20, 52)
ROUNDS = 3


def at(day: int, hour: int = 0) -> str:
    return (T0 + timedelta(days=day, hours=hour)).isoformat(timespec="microseconds")


# An order version: (order id, its version's day); all its rows refer to one staff
# member and one design, so a row that waits may be superseded by a later row of its
# version (the one allowed difference: a history row in the rebuild, listed).
versions = st.tuples(st.integers(1, 5), st.integers(0, 2))


@st.composite
def histories(draw):
    # The round each staff member and design (beyond the first) arrives in; past the
    # last round: never.
    staff_from = {1: 1, 2: draw(st.integers(1, ROUNDS + 1)), 3: draw(st.integers(2, ROUNDS + 1))}
    design_from = {1: 1, 2: draw(st.integers(1, ROUNDS + 1))}
    refers = {}  # version -> (staff, design)
    rounds = []
    for r in range(1, ROUNDS + 1):
        dims = {t: list(rows) for t, rows in DIMENSIONS.items()}
        dims["staff"] = [staff(s, first="Ann") for s, since in staff_from.items() if since == r and s > 1]
        if draw(st.booleans()):  # a renamed staff member
            dims["staff"].append(staff(1, first=draw(st.sampled_from(["Jo", "Al"])), updated=at(r)))
        dims["design"] = [design(d, name="Oak") for d, since in design_from.items() if since == r and d > 1]
        dims = {t: rows or DIMENSIONS[t] for t, rows in dims.items()}  # else a re-send
        facts = None
        if r == ROUNDS or draw(st.integers(0, 3)):  # else the packet has no objects
            facts = []
            for order, day in draw(st.lists(versions, min_size=1, max_size=4)):
                who = refers.setdefault((order, day), (draw(st.integers(1, 3)), draw(st.integers(1, 2))))
                units = draw(st.integers(1, 2))  # the same version with other units: a silent mutation
                facts.append(sales_order(order, updated=at(day, 1), staff_id=who[0], design_id=who[1],
                                         units_sold=units))
        rounds.append((dims, facts))
    return rounds


def live_run(rounds) -> Harness:
    h = Harness()
    for r, (dims, facts) in enumerate(rounds, start=1):
        named = []
        for table, rows in dims.items():
            h.upload(table, r, rows)
            named.append(f"{table}:{r}")
        if facts is not None:
            h.upload("sales_order", r, facts)
            named.append(f"sales_order:{r}")
        h.invoke(*named)
    return h


@settings(max_examples=int(os.environ.get("REBUILD_EXAMPLES", "6")), deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    rounds=histories(),
    seed=st.integers(0, 1000),
    batch=st.integers(1, 3),
    kills=st.lists(st.integers(1, 12), max_size=3),
)
def test_a_rebuild_gives_the_warehouse_of_processing_the_history_packet_by_packet(rounds, seed, batch, kills):
    for r, (dims, facts) in enumerate(rounds, start=1):
        note(f"round {r}: staff {[(s['staff_id'], s['first_name']) for s in dims['staff']]}, "
             f"designs {[d['design_id'] for d in dims['design']]}, orders "
             f"{None if facts is None else [(f['sales_order_id'], f['last_updated'][8:13], f['staff_id'], f['design_id'], f['units_sold']) for f in facts]}")
    live = live_run(rounds)
    rebuild = Rebuild(live.ingestion)
    report = rebuild.run(seed=seed, batch=batch, per_call=2, kills=tuple(kills))
    assert_same_warehouse(live.processed, rebuild.store, report)
    assert_gapless(rebuild.store, rebuild.ids, TARGET_PREFIX)
