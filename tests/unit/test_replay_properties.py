"""The newest truth, as a property (docs/design.md#waits-and-replays): for any
interleaving of fact packets, corrections, re-sends and late dimension packets, the
warehouse's last row of each version is the newest packet's content, and equals what
in-order processing with every dimension present from the start ends with; every wait
is resolved and nothing is written twice; and `SilentMutation` never counts a change
twice (expected_mutations: the reference model's high bound). Its low bound, every
change counted, holds in the explicit cases below but one: a known miss, marked so."""

from __future__ import annotations

import copy
from functools import cache

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runtime.waits import open_waits
from tests.support.harness import Harness, sales_order, staff

VERSIONS = ("2023-02-01T10:00:00", "2023-02-02T10:00:00")
LATE_STAFF = (21, 22)  # staff that arrive late in the run under test
EXAMPLES = 12  # seconds in `make test`; tests/reliability runs it long


def late_staff(staff_id: int) -> dict:
    return staff(staff_id, 1, "Late", f"S{staff_id}")


@cache
def _started(with_late_staff: bool) -> Harness:
    h = Harness()
    extra = [late_staff(s) for s in LATE_STAFF] if with_late_staff else []
    h.invoke(*h.upload_dimensions(staff=[staff(1, 1), *extra]))
    return h


def started(with_late_staff: bool) -> Harness:
    """Every dimension packet 1 processed (a copy of one run: they are slow to make)."""
    return copy.deepcopy(_started(with_late_staff))


# One fact row: (order, version, staff, units). A packet holds one row per version.
rows = st.tuples(st.integers(1, 3), st.sampled_from(VERSIONS), st.sampled_from((1, *LATE_STAFF)), st.integers(1, 3))
fact_packets = st.lists(
    st.lists(rows, min_size=1, max_size=4).map(lambda rs: list({(r[0], r[1]): r for r in reversed(rs)}.values())),
    min_size=1, max_size=5,
)


@st.composite
def runs(draw):
    """Fact packets and, among them, when each late staff member's packet arrives, and
    which neighbouring packets are named in one event."""
    packets = draw(fact_packets)
    steps: list[str] = [f"sales_order:{k}" for k in range(1, len(packets) + 1)]
    for n, staff_id in enumerate(LATE_STAFF, start=2):
        at = draw(st.integers(0, len(steps)))
        steps.insert(at, f"staff:{n}")
    # Late staff in id order: staff:2 before staff:3 (their packets are consecutive).
    staff_steps = [i for i, s in enumerate(steps) if s.startswith("staff:")]
    for i, n in zip(staff_steps, range(2, 2 + len(LATE_STAFF))):
        steps[i] = f"staff:{n}"
    events, i = [], 0
    while i < len(steps):
        size = draw(st.integers(1, 2))
        events.append(tuple(steps[i : i + size]))
        i += size
    return packets, events


def upload_facts(h: Harness, packets) -> None:
    for k, packet in enumerate(packets, start=1):
        h.upload("sales_order", k, [
            sales_order(order, updated=version, staff_id=staff_id, units_sold=units)
            for order, version, staff_id, units in packet
        ])


def last_rows(h: Harness) -> dict[tuple, tuple]:
    """(order, version date, version time) -> (staff, units) of its last row (by output
    packet, then row order: the order the loader keeps)."""
    last = {}
    for r in h.rows("fact_sales_order"):
        last[(r["sales_order_id"], r["last_updated_date"], r["last_updated_time"])] = (
            r["sales_staff_id"], r["units_sold"])
    return last


def newest_content(packets) -> dict[tuple, tuple]:
    newest = {}
    for packet in packets:
        for order, version, staff_id, units in packet:
            newest[(order, version)] = (staff_id, units)
    return newest


def expected_mutations(packets, written: list[tuple]) -> tuple[int, int]:
    """SilentMutation by docs/design.md#waits-and-replays, as bounds: a written row
    counts when its version was sent before with other content, written or still
    waiting. Every row of a version written after its first differs from the one before
    it (nothing is written twice in a row), so it counts. The first counts when a packet
    before the one it came from sent other content; which packet that was, the rows do
    not say when several sent the same content (1: A, 2: B, 3: A with A written alone,
    packets 1 and 2 superseded: from 3, so one change). So the low bound takes the first
    packet that sent that content, the high bound the last; they are equal unless the
    content came back.

    `written`: (version, content) of the warehouse's rows, in load order."""
    sent: dict = {}
    for packet in packets:
        for order, version, staff_id, units in packet:
            sent.setdefault((order, version), []).append((staff_id, units))
    low = high = 0
    seen = set()
    for version, content in written:
        if version in seen:
            low, high = low + 1, high + 1
        else:
            history = sent[version]
            at = [i for i, c in enumerate(history) if c == content]
            low += any(c != content for c in history[:at[0]])
            high += any(c != content for c in history[:at[-1]])
        seen.add(version)
    return low, high


def mutations(h: Harness) -> float:
    return sum(m.get("SilentMutation", 0) for m in h.metrics() if m["table"] == "sales_order")


# A content that came back (A, B, A) while all three waited: only the last is written,
# one change from B (a long run found it; the model's first bound had said none).
CAME_BACK = (
    [[(3, "2023-02-02T10:00:00", 21, 1)], [(3, "2023-02-02T10:00:00", 21, 2)], [(3, "2023-02-02T10:00:00", 21, 1)],
     [(1, "2023-02-01T10:00:00", 1, 1)], [(1, "2023-02-01T10:00:00", 1, 1)]],
    [("sales_order:1", "sales_order:2"), ("staff:2", "sales_order:3"), ("sales_order:4",), ("sales_order:5", "staff:3")],
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
@example(CAME_BACK)
def test_the_last_row_of_every_version_is_the_newest_packets_content(run):
    check_the_newest_truth(run)


def test_a_content_that_came_back_counts_the_one_change_written():
    check_the_newest_truth(CAME_BACK, counts_every_change=True)


# Order 3 waits for staff 22 with units 1 (packet 3), then with units 2 (packet 4), then
# packet 5 re-sends units 2; staff 22 arrives: packet 3's row is superseded, packet 4's
# written, packet 5's skipped. The change from 1 to 2 is in the warehouse's history of
# the warehouse's rows nowhere (packet 3's row is never written), yet the source made it,
# and SilentMutation counts 0 where it should count 1. Cause not yet found.
CHANGED_WHILE_BOTH_WAITED = (
    [[(1, "2023-02-01T10:00:00", 1, 1)], [(1, "2023-02-01T10:00:00", 1, 1)], [(3, "2023-02-01T10:00:00", 22, 1)],
     [(3, "2023-02-01T10:00:00", 22, 2)], [(3, "2023-02-01T10:00:00", 22, 2)]],
    [("staff:2",), ("sales_order:1", "sales_order:2"), ("sales_order:3",), ("sales_order:4",),
     ("staff:3", "sales_order:5")],
)


@pytest.mark.xfail(strict=True, reason="known miss: a change between two waiting rows of a version, the older "
                   "superseded, is not counted as SilentMutation (docs/design.md#waits-and-replays)")
def test_a_change_between_two_waiting_rows_is_counted_when_the_newer_is_written():
    check_the_newest_truth(CHANGED_WHILE_BOTH_WAITED, counts_every_change=True)


def check_the_newest_truth(run, counts_every_change: bool = False) -> None:
    """`counts_every_change`: also the low bound of SilentMutation. Off in the property:
    a change between two rows that both waited, the older superseded, is not counted yet
    (test_a_change_between_two_waiting_rows_is_counted_when_the_newer_is_written)."""
    packets, events = run
    actual = started(with_late_staff=False)
    upload_facts(actual, packets)
    for n, staff_id in enumerate(LATE_STAFF, start=2):
        actual.upload("staff", n, [late_staff(staff_id)])
    for event in events:
        actual.invoke(*event)

    reference = started(with_late_staff=True)
    upload_facts(reference, packets)
    reference.invoke(f"sales_order:{len(packets)}")

    got = last_rows(actual)
    assert got == last_rows(reference)
    newest = newest_content(packets)
    version_on = {v[:10]: v for v in VERSIONS}  # the versions differ by their date
    assert {(o, version_on[d.isoformat()]): c for (o, d, _), c in got.items()} == newest
    # Every wait resolved once; a version's content is never written twice in a row.
    assert open_waits(actual.processed) == []
    rows_seen, written = {}, []
    for r in actual.rows("fact_sales_order"):
        version = (r["sales_order_id"], r["last_updated_date"], r["last_updated_time"])
        content = (r["sales_staff_id"], r["units_sold"])
        assert rows_seen.get(version) != content, f"{version} written twice with the same content"
        rows_seen[version] = content
        written.append(((r["sales_order_id"], version_on[r["last_updated_date"].isoformat()]), content))
    low, high = expected_mutations(packets, written)
    assert mutations(actual) <= high, (mutations(actual), low, high)  # never a change counted twice
    if counts_every_change:
        assert low <= mutations(actual), (mutations(actual), low, high)
    actual.check_invariants()
