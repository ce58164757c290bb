"""Waiting facts and replays (docs/design.md#waits-and-replays): the newest packet's
content is always the last row of a version, every wait is resolved once, and a change
is reported once, when the newer content is written."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from runtime import keys
from runtime.waits import WaitWatch, open_waits
from tests.support.fakes import SimulatedKill
from tests.support.harness import Harness, sales_order, staff

V = "2023-02-01T10:00:00"  # the version (X, V) the examples send several times


@pytest.fixture
def h() -> Harness:
    h = Harness()
    h.invoke(*h.upload_dimensions())
    return h


def total(h: Harness, metric: str, table: str = "fact_sales_order") -> float:
    return sum(m.get(metric, 0) for m in h.metrics() if m["table"] == table and "wait" not in m)


def mutations(h: Harness, source: str = "sales_order") -> float:
    """SilentMutation is counted by the fact's source table."""
    return total(h, "SilentMutation", source)


def versions_of(h: Harness, order: int) -> list[tuple[int, int]]:
    """(staff, units) of every row of `order` in the warehouse, in load order."""
    return [(r["sales_order_id"] and r["sales_staff_id"], r["units_sold"])
            for r in h.rows("fact_sales_order") if r["sales_order_id"] == order]


def staff_21() -> dict:
    return staff(21, 1, "Ann", "Lee", updated="2023-03-01T00:00:00")


def test_a_correction_while_waiting_supersedes_the_waiting_row(h, caplog):
    """(a) X waits for staff 21 (packet 2); packet 3 sends the same version corrected
    to staff 1 and it is written; staff 21 arrives: packet 2's stale row is not written.
    The correction is a change of content packet 2 sent (still waiting): reported once,
    when packet 3 writes it, and never again when the waiting row is resolved."""
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=21, units_sold=5)])
    h.upload("sales_order", 3, [sales_order(7, updated=V, staff_id=1, units_sold=5)])
    h.invoke("sales_order:1", "sales_order:2", "sales_order:3")
    assert versions_of(h, 7) == [(1, 5)]
    assert mutations(h) == 1
    [changed] = [r for r in caplog.records if "came back changed" in r.getMessage()]
    assert changed.packet == "sales_order:3" and changed.ids == [7]
    h.upload("staff", 2, [staff_21()])
    summary = h.invoke("staff:2")
    assert [o.packet for o in summary.outcomes] == ["staff:2", "replay:after_staff_packet_2"]
    assert versions_of(h, 7) == [(1, 5)]  # the newest truth stays the last row
    [report] = [r for r in summary.outcomes[-1].reports if r.table == "fact_sales_order"]
    assert (report.rows_written, report.rows_skipped, report.rows_rejected) == (0, 1, 0)
    [superseded] = [r for r in caplog.records if r.getMessage().startswith("waiting fact versions superseded")]
    assert superseded.superseded_by == {"sales_order:3": [7]}
    assert mutations(h) == 1  # packet 3's, not again
    assert open_waits(h.processed) == []  # resolved, not quarantined again
    h.check_invariants()


def test_a_version_that_waited_twice_is_written_oldest_first_and_its_change_reported_once(h):
    """(b) X waits (packet 2); packet 3 sends X's version changed, and it waits too;
    staff 21 arrives: both offered, older first; packet 3's content is the last row."""
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=21, units_sold=5)])
    h.upload("sales_order", 3, [sales_order(7, updated=V, staff_id=21, units_sold=9)])
    h.invoke("sales_order:1", "sales_order:2", "sales_order:3")
    assert mutations(h) == 0  # nothing is reported when a row waits
    assert total(h, "RowsWaiting") == 2 and total(h, "RowsRejected") == 0
    assert [w.packet for w in open_waits(h.processed)] == [2, 3]
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(21, 5), (21, 9)]
    assert h.output_numbers("fact_sales_order") == [1, 2]  # one replay packet, in row order
    assert mutations(h) == 1
    assert total(h, "RowsWaiting") == 2 and total(h, "RowsRejected") == 0  # counted once, when they began
    assert open_waits(h.processed) == []
    h.check_invariants()


def test_a_change_written_by_a_replay_while_the_older_row_still_waits_counts_once(h):
    """X waits for staff 21 (packet 2); packet 3's change of X waits for staff 22; staff
    22 arrives first: packet 3's row is written while packet 2's still waits, and that is
    the change, reported once; when staff 21 arrives packet 2's row is superseded."""
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=21, units_sold=5)])
    h.upload("sales_order", 3, [sales_order(7, updated=V, staff_id=22, units_sold=5)])
    h.invoke("sales_order:1", "sales_order:2", "sales_order:3")
    assert mutations(h) == 0
    h.upload("staff", 2, [staff(22, 1, "Bo", "Ng", updated="2023-03-01T00:00:00")])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(22, 5)]
    assert mutations(h) == 1
    assert [w.packet for w in open_waits(h.processed)] == [2]
    h.upload("staff", 3, [staff_21()])
    h.invoke("staff:3")
    assert versions_of(h, 7) == [(22, 5)]
    assert mutations(h) == 1
    assert open_waits(h.processed) == []
    h.check_invariants()


def test_a_packet_that_only_waits_is_remembered_for_the_change_after_it(h):
    """Packet 2 writes nothing (X waits for staff 21), packet 3 writes X changed: the
    memory knew packet 2's content though no output of it was written."""
    h.upload("sales_order", 1, [sales_order(1)])
    h.invoke("sales_order:1")
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=21, units_sold=5)])
    h.invoke("sales_order:2")
    h.upload("sales_order", 3, [sales_order(7, updated=V, staff_id=1, units_sold=9)])
    h.invoke("sales_order:3")
    assert mutations(h) == 1
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(1, 9)] and mutations(h) == 1
    h.check_invariants()


def test_waits_are_offered_by_packet_number_not_by_file_name(h):
    """(c) quarantine files of packets 10 and 5: packet 5's rows are offered first,
    though `..._packet_10_...` sorts before `..._packet_5_...`."""
    for k in range(1, 11):
        rows = [sales_order(100 + k)]
        if k in (5, 10):
            rows.append(sales_order(7, updated=V, staff_id=21, units_sold=k))
        h.upload("sales_order", k, rows)
    h.invoke("sales_order:10")
    files = [k for k in h.processed.list_keys(keys.quarantine_prefix("fact_sales_order"))]
    assert files == sorted(files) and "_packet_10_" in files[0]  # the text order is the wrong one
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(21, 5), (21, 10)]  # packet 10's content is the last row
    h.check_invariants()


def test_a_changed_row_counts_one_silent_mutation_when_it_is_written(h):
    """(d) a version written (packet 2) comes back changed and waiting (packet 3): the
    change is reported once, by the replay that writes it, never when it starts waiting."""
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 2, [sales_order(7, updated=V, units_sold=5)])
    h.upload("sales_order", 3, [sales_order(7, updated=V, staff_id=21, units_sold=6)])
    h.invoke("sales_order:1", "sales_order:2", "sales_order:3")
    assert mutations(h) == 0
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(1, 5), (21, 6)]
    assert mutations(h) == 1


def test_a_resend_while_waiting_supersedes_the_waiting_change(h):
    """Packet 2 writes X; packet 3's change of X waits; packet 4 re-sends packet 2's X
    (skipped as equal, and writes nothing at all): the newest truth is packet 4's."""
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 2, [sales_order(7, updated=V, units_sold=5)])
    h.upload("sales_order", 3, [sales_order(7, updated=V, staff_id=21, units_sold=6)])
    h.upload("sales_order", 4, [sales_order(7, updated=V, units_sold=5)])
    h.invoke("sales_order:1", "sales_order:2", "sales_order:3", "sales_order:4")
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(1, 5)]
    assert mutations(h) == 0
    h.check_invariants()


def test_a_resend_of_a_payment_differing_only_in_an_unwritten_column_is_skipped():
    from tests.support.harness import payment, payment_type, transaction

    h = Harness()
    h.invoke(*h.upload_dimensions(payment_type=[payment_type(1)], transaction=[transaction(1)]))
    h.upload("payment", 1, [payment(1, payment_amount=3.94)])
    h.upload("payment", 2, [payment(1, payment_amount="3.940", company_ac_number=1)])
    summary = h.invoke("payment:1", "payment:2")
    assert len(h.rows("fact_payment")) == 1
    [report] = [r for r in summary.outcomes[-1].reports if r.table == "fact_payment"]
    assert (report.rows_written, report.rows_skipped) == (0, 1)
    assert mutations(h, "payment") == 0


def test_waits_older_than_the_alarm_age_are_reported_with_their_missing_keys(h, caplog):
    h.upload("sales_order", 1, [sales_order(1, staff_id=21), sales_order(2, staff_id=22)])
    h.invoke("sales_order:1")
    waits = open_waits(h.processed)
    assert [(w.packet, w.line, w.waits_for) for w in waits] == [(1, 1, {"staff": 21}), (1, 2, {"staff": 22})]
    from runtime.observability import Metrics

    metrics = Metrics()
    later = datetime.now(timezone.utc) + timedelta(hours=25)
    assert WaitWatch(metrics, 24).report(waits, later)["fact_sales_order"] == 2
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.missing == {"staff": [21, 22]} and logged.rows_overdue == 2
    documents = [d for d in metrics.flush() if d.get("wait") == "overdue"]
    sales = [d for d in documents if d["table"] == "fact_sales_order"]
    assert sales == [{**sales[0], "RowsWaiting": 2}]
    assert sales[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["table", "wait"]]
    # Young waits: the document says 0, so the alarm clears.
    metrics = Metrics()
    WaitWatch(metrics, 24).report(waits)
    assert {d["table"]: d["RowsWaiting"] for d in metrics.flush()}["fact_sales_order"] == 0


def test_the_invocation_that_lists_waits_reports_the_overdue_ones(h):
    h.upload("sales_order", 1, [sales_order(1, staff_id=21)])
    h.invoke("sales_order:1")
    key = keys.quarantine_key("fact_sales_order", "sales_order", 1)
    h.processed.modified[key] -= timedelta(hours=30)  # it has waited 30 hours
    h.upload("staff", 2, [staff(22, 1, "Bo", "Ng")])  # a key no fact waits for: no replay
    h.invoke("staff:2")
    overdue = [m for m in h.metrics() if m.get("wait") == "overdue" and m["table"] == "fact_sales_order"]
    assert [m["RowsWaiting"] for m in overdue] == [1]  # dimensions:1 listed none: no document
    assert json.loads(json.dumps(overdue[-1]))["RowsWaiting"] == 1


def test_a_waiting_row_kept_raw_is_offered_as_its_exact_text(h):
    # A source field named like the replay's own bookkeeping: the row is kept raw.
    h.upload("sales_order", 1, [{**sales_order(1, staff_id=21), "_packet": 99}])
    h.invoke("sales_order:1")
    [waiting] = h.quarantine("fact_sales_order", "sales_order:1")
    assert "_raw" in waiting and waiting["_waits_for"] == {"staff": 21}
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")
    assert versions_of(h, 1) == [(21, 42972)]
    assert open_waits(h.processed) == []


def test_a_packet_skipped_by_an_operator_keeps_what_the_memory_knew_of_re_sends(h):
    """Packet 3's re-send supersedes packet 2's waiting change even when packet 4, skipped
    by an operator, is the last packet of the table before the replay."""
    from runtime.errors import MissingPacketError
    from runtime.operations import skip
    from tests.support.harness import PREFIX

    h.upload("sales_order", 1, [sales_order(7, updated=V, units_sold=5)])
    h.upload("sales_order", 2, [sales_order(7, updated=V, staff_id=21, units_sold=6)])
    h.upload("sales_order", 3, [sales_order(7, updated=V, units_sold=5)])
    with pytest.raises(MissingPacketError):
        h.invoke("sales_order:4")  # 4 has no objects and no later packet has: it fails
    skip(h.processed, h.ids, PREFIX, "sales_order", 4, "never extracted", "on-call")
    h.invoke()
    assert h.consumed("sales_order") == 4
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")
    assert versions_of(h, 7) == [(1, 5)]


def test_open_waits_show_where_each_came_from_for_the_operator(h):
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, staff_id=21)])
    h.upload("sales_order", 2, [sales_order(3, staff_id=22)])
    h.invoke("sales_order:2")
    views = [w.to_view() for w in open_waits(h.processed)]
    assert [(v["packet"], v["line"], v["waits_for"]) for v in views] == [(1, 2, {"staff": 21}), (2, 1, {"staff": 22})]
    assert all(v["object"].startswith("sales_order/sales_order_packet_") for v in views)
    json.dumps(views)  # printable as it is
    h.upload("staff", 2, [staff_21()])
    h.invoke("staff:2")  # 21 resolved; 22 still open, now in the replay's file, same origin
    [left] = [w.to_view() for w in open_waits(h.processed)]
    assert (left["packet"], left["line"], left["waits_for"]) == (2, 1, {"staff": 22})
    assert "_from_replay_" in left["file"] and left["since"] == views[1]["since"]


def waiting_for_staff_21() -> Harness:
    """A fact waits for staff 21; staff packet 2 brings it (the event not yet run)."""
    h = Harness()
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(7, updated=V, staff_id=21)])
    h.invoke("sales_order:1")
    h.upload("staff", 2, [staff_21()])
    return h


def test_a_replay_committed_under_its_earlier_name_is_finished_once_after_an_upgrade():
    """An earlier version named every replay's record fact_sales_order_replay_{id}: one
    committed (step 4) but not applied (step 5) before an upgrade is found under that
    name and finished, its outputs made visible once, nothing computed or written again."""
    replay = "after_staff_packet_2"
    new, old = keys.replay_commit_key(replay), f"{keys.REPLAY_COMMITS}fact_sales_order_replay_{replay}.json"
    reference = waiting_for_staff_21()
    before = reference.writes.count
    reference.invoke("staff:2")
    record_written_at = reference.writes.log.index(f"put {new}", before) + 1

    h = waiting_for_staff_21()
    h.writes.kill_after = record_written_at  # killed right after the record, before step 5
    with pytest.raises(SimulatedKill):
        h.invoke("staff:2")
    h.processed.put(old, h.processed.objects.pop(new))  # as the earlier version named it
    h.processed.metadata[old] = h.processed.metadata.pop(new)
    assert h.ids.values != reference.ids.values  # its outputs not visible yet

    h.invoke("staff:2")  # the retry, by the upgraded code
    assert h.processed.list_keys(keys.REPLAY_COMMITS) == [old]
    assert h.processed.objects[old] == reference.processed.objects[new]
    assert {k: v for k, v in h.processed.objects.items() if k != old} == {
        k: v for k, v in reference.processed.objects.items() if k != new
    }
    assert h.ids.values == reference.ids.values
    assert [s for s, _ in versions_of(h, 7)] == [21] and open_waits(h.processed) == []
    h.check_invariants()
