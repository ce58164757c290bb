"""docs/design.md#ordering under failure: the process is killed after every single write, another
event is processed before the retry, and the end result must be exactly what an
undisturbed run produces: every row once, packet numbers without gaps, ids right."""

from __future__ import annotations

import pytest

from runtime import keys
from tests.support.fakes import SimulatedKill
from tests.support.sweep import kill_points as sampled
from tests.support.harness import (
    Harness,
    address,
    counterparty,
    department,
    sales_order,
    staff,
)


def upload_all(h: Harness) -> None:
    h.upload_dimensions(
        address=[address(1), address(2)],
        counterparty=[counterparty(1, 1), counterparty(2, 2)],
        department=[department(1), department(2, "Finance")],
        staff=[staff(1, 1), staff(2, 2, "Deron", "Beier"), staff(3, 9, "Ann", "Lee")],  # 3 waits for dept 9
    )
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, staff_id=2), sales_order(3, staff_id=3), "broken"])
    h.upload("department", 2, [department(1, "Sales", "Leeds", updated="2023-01-01T00:00:00"), department(9, "Dispatch", "Leds")])
    h.upload("address", 2, [address(2, city="York", updated="2023-01-02T00:00:00")])
    h.upload("staff", 2, [staff(4, 1, "Bo", "Ng", updated="2023-01-03T00:00:00")])
    h.upload("sales_order", 2, [sales_order(1, updated="2023-01-04T00:00:00", units_sold=1), sales_order(4, staff_id=3)])
    h.upload("sales_order", 3, [sales_order(5, staff_id=4)])


E1 = ("currency:1", "design:1", "address:1", "department:1", "counterparty:1", "staff:1", "sales_order:1")
E2 = ("sales_order:2", "staff:2", "department:2", "address:2")
E3 = ("sales_order:3",)
EVENTS = (E1, E2, E3)


def final_state(h: Harness) -> tuple[dict, dict]:
    return dict(h.processed.objects), dict(h.ids.values)


def undisturbed() -> tuple[Harness, list[int]]:
    """The events run without a kill; and how many writes each made."""
    h = Harness()
    upload_all(h)
    writes_per_event = []
    for event in EVENTS:
        before = h.writes.count
        h.invoke(*event)
        writes_per_event.append(h.writes.count - before)
    return h, writes_per_event


@pytest.fixture(scope="module")
def reference():
    h, writes_per_event = undisturbed()
    h.check_invariants()
    return final_state(h), writes_per_event, h


def test_the_undisturbed_run_is_what_the_semantics_say(reference):
    _, _, h = reference
    # Order 3's staff waits for department 9: quarantined in E1, written by the replay
    # that department 9's arrival (E2) queues. Every version once.
    assert sorted(order for order, _, _ in h.fact_versions()) == [1, 1, 2, 3, 4, 5]
    assert h.processed.list_keys(keys.REPLAY_COMMITS) == [keys.replay_commit_key("after_department_packet_2")]
    assert set(h.fact_versions().values()) == {1}
    assert [r["sales_order_id"] for r in h.quarantine("fact_sales_order", "sales_order:1") if "_raw" not in r] == [3]
    assert h.output_numbers("dim_staff") == [1, 2, 3]
    assert h.consumed("sales_order") == 3 and h.consumed("department") == 2
    assert [r.get("_raw") for r in h.quarantine("fact_sales_order", "sales_order:1")] == [None, "broken"]


def kill_points():
    _, counts = undisturbed()
    return sampled([(e, w) for e, n in enumerate(counts) for w in range(1, n + 1)])


@pytest.mark.parametrize("event_index, kill_after", kill_points())
def test_killed_after_any_write_then_another_event_then_the_retry(reference, event_index, kill_after):
    expected, _, _ = reference
    h = Harness()
    upload_all(h)
    for event in EVENTS[:event_index]:
        h.invoke(*event)
    h.writes.kill_after = h.writes.count + kill_after
    with pytest.raises(SimulatedKill):
        h.invoke(*EVENTS[event_index])
    # Before Lambda's retry, the next event arrives (or, after the last one, a duplicate
    # invoke of the first): it must finish the killed invocation's packets first.
    following = EVENTS[event_index + 1] if event_index + 1 < len(EVENTS) else E1
    h.invoke(*following)
    h.invoke(*EVENTS[event_index])  # Lambda's retry of the killed invocation
    for event in EVENTS[event_index + 2 :]:
        h.invoke(*event)
    h.check_invariants()
    assert final_state(h) == expected


def test_a_kill_between_commit_record_and_ids_finishes_from_the_record(reference):
    """After step 4 the outputs are not recomputed: the commit record is the truth."""
    h = Harness()
    upload_all(h)
    h.invoke(*E1)
    commit = keys.commit_key("sales_order", 2)
    h.writes.kill_after = None
    writes = []
    original = h.writes.done

    def kill_after_commit(what):
        original(what)
        writes.append(what)
        if what == f"put {commit}":
            raise SimulatedKill(what)

    h.writes.done = kill_after_commit
    with pytest.raises(SimulatedKill):
        h.invoke(*E2)
    h.writes.done = original
    h.ingestion.objects.clear()  # the packets are not even readable any more
    h.invoke()  # nothing named: the pending packets are finished from their records
    assert h.consumed("sales_order") == 2


def _replay_scenario(h: Harness) -> tuple[str, ...]:
    """Facts quarantined for want of dimensions; returns the event that brings them."""
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, staff_id=2), sales_order(3, units_sold=-1), "broken"])
    h.invoke("sales_order:1")
    h.upload("sales_order", 2, [sales_order(4)])
    return tuple(h.upload_dimensions(staff=[staff(1, 1), staff(2, 1, "Deron", "Beier")]))


def test_the_replay_the_dimensions_queue_killed_after_any_write_then_another_event_then_the_retry():
    reference = Harness()
    dimensions = _replay_scenario(reference)
    before = reference.writes.count
    reference.invoke(*dimensions)
    writes = reference.writes.count - before
    reference.invoke("sales_order:2")
    reference.check_invariants()
    assert sorted(o for o, _, _ in reference.fact_versions()) == [1, 2, 4]
    assert reference.processed.list_keys(keys.REPLAY_COMMITS) == [keys.replay_commit_key("after_currency_packet_1")]
    expected = final_state(reference)
    for kill_after in sampled(range(1, writes + 1)):
        h = Harness()
        _replay_scenario(h)
        h.writes.kill_after = h.writes.count + kill_after
        with pytest.raises(SimulatedKill):
            h.invoke(*dimensions)
        h.invoke("sales_order:2")  # the next event finishes the killed one, replay included
        h.invoke(*dimensions)  # Lambda's retry of the killed invocation
        h.check_invariants()
        assert final_state(h) == expected, f"kill after write {kill_after}"


# -- the new writers: passing over, late packets, the fact memory ----------------------

OTHER = E1  # "another event" between a kill and the retry: a duplicate invoke of E1


def _late_scenario(h: Harness):
    """Packets 2 of sales_order and staff are passed over, arrive late and are processed
    at an operator's request; sales_order re-sends and silently changes rows already
    written. Returns the steps: ("invoke", packets) or ("late", table, k)."""
    h.upload_dimensions(staff=[staff(1, 1), staff(2, 1, "Deron", "Beier")])
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, staff_id=2)])
    h.upload("sales_order", 3, [sales_order(3), sales_order(1)])  # order 1 re-sent as it was
    h.upload("staff", 3, [staff(4, 1, "Bo", "Ng", updated="2023-01-03T00:00:00")])
    return (
        ("invoke", E1),
        ("invoke", ("sales_order:3", "staff:3")),  # 2 of each passed over: 3 has objects
        ("arrive",),
        ("late", "staff", 2),
        ("late", "sales_order", 2),
        ("invoke", ()),  # processes both late packets
        ("invoke", ("sales_order:4",)),
    )


def _arrive(h: Harness) -> None:
    h.upload("staff", 2, [staff(3, 1, "Ann", "Lee", updated="2023-01-02T00:00:00"),
                          staff(1, 1, "Old", updated="2020-01-01T00:00:00")])  # older than the state
    # Order 2 changed without a new last_updated (written, SilentMutation); order 5 new,
    # for staff 3 who arrives in the late staff packet; a broken line.
    h.upload("sales_order", 2, [sales_order(2, staff_id=2, units_sold=9), sales_order(5, staff_id=3), "broken"])
    h.upload("sales_order", 4, [sales_order(5, staff_id=3), sales_order(6)])  # 5 re-sent


def _step(h: Harness, step) -> None:
    from runtime.operations import late

    if step[0] == "invoke":
        h.invoke(*step[1])
    elif step[0] == "arrive":
        _arrive(h)
    else:
        late(h.processed, h.ingestion, step[1], step[2])


@pytest.fixture(scope="module")
def late_reference():
    h = Harness()
    steps = _late_scenario(h)
    writes = []
    for step in steps:
        before = h.writes.count
        _step(h, step)
        writes.append(h.writes.count - before if step[0] == "invoke" else 0)
    h.check_invariants()
    return final_state(h), steps, writes, h


def test_the_late_scenario_means_what_it_says(late_reference):
    _, _, writes, h = late_reference
    assert h.processed.list_keys(keys.LATE_COMMITS) == [keys.late_commit_key("sales_order", 2),
                                                       keys.late_commit_key("staff", 2)]
    assert h.processed.list_keys(keys.GAPS) == []
    # Every version once, the silent change of order 2 as a second row, the re-sends skipped.
    assert sorted((order, count) for (order, _, _), count in h.fact_versions().items()) == [
        (1, 1), (2, 2), (3, 1), (5, 1), (6, 1)]
    assert sorted((r["sales_order_id"], r["units_sold"]) for r in h.rows("fact_sales_order")) == [
        (1, 42972), (2, 9), (2, 42972), (3, 42972), (5, 42972), (6, 42972)]
    assert [r["staff_id"] for r in h.rows("dim_staff")] == [1, 2, 4, 3]
    assert any(k.startswith(keys.HISTORY) for k in h.processed.objects)
    assert sum(writes) > 40


def late_kill_points():
    h = Harness()
    steps = _late_scenario(h)
    points = []
    for i, step in enumerate(steps):
        before = h.writes.count
        _step(h, step)
        if step[0] == "invoke":
            points += [(i, w) for w in range(1, h.writes.count - before + 1)]
    return sampled(points)


@pytest.mark.parametrize("step_index, kill_after", late_kill_points())
def test_late_packets_and_the_fact_memory_killed_after_any_write_then_another_event_then_the_retry(
    late_reference, step_index, kill_after
):
    expected, steps, _, _ = late_reference
    h = Harness()
    _late_scenario(h)
    for step in steps[:step_index]:
        _step(h, step)
    h.writes.kill_after = h.writes.count + kill_after
    with pytest.raises(SimulatedKill):
        _step(h, steps[step_index])
    h.invoke(*OTHER)  # another event first: it finishes the killed invocation's work
    _step(h, steps[step_index])  # Lambda's retry of the killed invocation
    for step in steps[step_index + 1 :]:
        _step(h, step)
    h.check_invariants()
    assert final_state(h) == expected
