"""The pipeline over in-memory ports: semantics across packets, ordering, recovery."""

import io
import json

import pytest

from runtime import keys
from runtime.errors import (
    CorruptRecordError,
    MissingPacketError,
    OutputConflictError,
    UnreadableObjectError,
)
from tests.support.harness import (
    Harness,
    address,
    counterparty,
    department,
    design,
    sales_order,
    staff,
)


@pytest.fixture
def h():
    return Harness()


def test_all_dimensions_then_facts_produce_every_table_and_advance_the_ids(h):
    named = h.upload_dimensions()
    h.upload("sales_order", 1, [sales_order(1), sales_order(2)])
    summary = h.invoke(*named, "sales_order:1")
    assert summary.rows_written() == {
        "dim_currency": 1, "dim_design": 1, "dim_location": 1, "dim_counterparty": 1,
        "dim_staff": 1, "dim_date": 3, "fact_sales_order": 2,
    }
    assert all(h.consumed(t.split(":")[0]) == 1 for t in named + ["sales_order:1"])
    h.check_invariants()
    metadata = h.processed.metadata[h.output_keys("fact_sales_order")[0]]
    assert metadata["source"] == "sales_order:1" and metadata["rows"] == "2" and len(metadata["sha256"]) == 64


def test_an_updated_sales_order_becomes_a_second_fact_row(h):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(7, updated="2022-11-03T14:20:52")])
    h.upload("sales_order", 2, [sales_order(7, updated="2022-11-05T10:00:00", units_sold=5)])
    h.invoke("sales_order:1")
    h.invoke("sales_order:2")
    assert [r["units_sold"] for r in h.rows("fact_sales_order")] == [42972, 5]
    assert h.output_numbers("fact_sales_order") == [1, 2]


def test_a_department_change_re_emits_the_dim_staff_rows_of_its_staff(h):
    h.invoke(*h.upload_dimensions(staff=[staff(1, 1), staff(2, 1, "Deron", "Beier"), staff(3, 2, "Ann", "Lee")],
                                  department=[department(1, "Sales"), department(2, "Finance")]))
    h.upload("department", 2, [department(1, "Sales", "Leeds", updated="2023-01-01T00:00:00")])
    h.invoke("department:2")
    re_emitted = h.table("dim_staff", 2)
    assert re_emitted["staff_id"].to_pylist() == [1, 2]
    assert set(re_emitted["location"].to_pylist()) == {"Leeds"}
    assert h.processed.metadata[h.output_keys("dim_staff")[1]]["source"] == "department:2"
    assert "20230101T000000.000000Z" in h.output_keys("dim_staff")[1]


def test_an_address_change_re_emits_dim_location_and_the_counterparties_registered_there(h):
    h.invoke(*h.upload_dimensions(address=[address(1), address(2)],
                                  counterparty=[counterparty(1, 1), counterparty(2, 2), counterparty(3, 1)]))
    h.upload("address", 2, [address(1, city="Leeds", updated="2023-02-01T00:00:00")])
    h.invoke("address:2")
    assert h.table("dim_location", 2)["city"].to_pylist() == ["Leeds"]
    assert h.table("dim_counterparty", 2)["counterparty_id"].to_pylist() == [1, 3]
    assert set(h.table("dim_counterparty", 2)["counterparty_legal_city"].to_pylist()) == {"Leeds"}


def test_a_staff_row_waiting_for_its_department_is_emitted_when_the_department_arrives(h):
    h.invoke(*h.upload_dimensions(staff=[staff(1, 1), staff(2, 5)]))
    assert h.quarantine("dim_staff", "staff:1")[0]["staff_id"] == 2
    h.upload("department", 2, [department(5, "Dispatch", "Leds")])
    h.invoke("department:2")
    assert h.table("dim_staff", 2).to_pylist() == [
        {"staff_id": 2, "first_name": "Jeremie", "last_name": "Franey", "department_name": "Dispatch",
         "location": "Leds", "email_address": "jeremie.franey@terrifictotes.com"}
    ]


def test_an_older_dimension_row_than_the_state_is_not_emitted(h):
    h.invoke(*h.upload_dimensions(staff=[staff(1, 1, updated="2023-01-01T00:00:00")]))
    h.upload("staff", 2, [staff(1, 1, first="Old", updated="2022-01-01T00:00:00")])
    h.invoke("staff:2")
    assert h.output_numbers("dim_staff") == [1]
    assert h.consumed("staff") == 2


def test_facts_arriving_before_their_dimensions_are_written_once_the_dimensions_come(h):
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, units_sold=-1)])
    h.invoke("sales_order:1")
    assert h.output_keys("fact_sales_order") == []
    waiting, bad = h.quarantine("fact_sales_order", "sales_order:1")
    assert len(waiting["_reasons"]) == 5 and waiting["sales_order_id"] == 1
    assert waiting["_waits_for"] == {"staff": 1, "counterparty": 1, "currency": 1, "design": 1, "address": 1}
    summary = h.invoke(*h.upload_dimensions())
    # One replay after the whole event, not one per dimension packet.
    assert [o.packet for o in summary.outcomes][-1:] == ["replay:after_currency_packet_1"]
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    # The negative quantity waits for nothing: no further replay is queued for it.
    h.upload("staff", 2, [staff(2, 1, "Bo", "Ng", updated="2023-01-01T00:00:00")])
    summary = h.invoke("staff:2")
    assert [o.packet for o in summary.outcomes] == ["staff:2"]
    h.upload("sales_order", 2, [sales_order(3)])
    h.invoke("sales_order:2")
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 3]
    h.check_invariants()


def test_dimensions_named_in_the_same_event_are_processed_before_the_facts(h):
    h.upload("sales_order", 1, [sales_order(1)])
    named = h.upload_dimensions()
    h.invoke("sales_order:1", *reversed(named))
    assert len(h.rows("fact_sales_order")) == 1


def test_the_same_event_twice_writes_nothing_new(h):
    named = h.upload_dimensions()
    h.upload("sales_order", 1, [sales_order(1)])
    h.invoke(*named, "sales_order:1")
    before = (dict(h.processed.objects), dict(h.ids.values))
    summary = h.invoke(*named, "sales_order:1")
    assert (dict(h.processed.objects), dict(h.ids.values)) == before
    assert len(summary.already_processed) == 7


def test_a_packet_id_gap_is_caught_up_with_a_warning_metric(h, caplog):
    h.invoke(*h.upload_dimensions())
    for k in (1, 2, 3):
        h.upload("sales_order", k, [sales_order(k)])
    summary = h.invoke("sales_order:3")
    assert [o.packet for o in summary.outcomes] == ["sales_order:1", "sales_order:2", "sales_order:3"]
    assert h.output_numbers("fact_sales_order") == [1, 2, 3]
    assert any(m.get("PacketGap") == 1 and m["table"] == "sales_order" for m in h.metrics())


def test_a_missing_packet_before_a_later_one_is_passed_over(h):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 2, [sales_order(2)])
    summary = h.invoke("sales_order:2")
    assert [o.status for o in summary.outcomes] == ["passed_over", "committed"]
    assert h.consumed("sales_order") == 2
    assert h.output_numbers("fact_sales_order") == [1]
    h.check_invariants()


def _consumed_through(h, table, last, rows):
    """Packets 1..last of `table` uploaded and processed."""
    for k in range(1, last + 1):
        h.upload(table, k, [rows(k)])
    h.invoke(f"{table}:{last}")
    assert h.consumed(table) == last


@pytest.mark.parametrize(
    "table, consumed, named, rows",
    [
        ("sales_order", 7, 99, lambda k: sales_order(k)),
        ("design", 1, 40, lambda k: design(k)),
        ("sales_order", 1, 3, lambda k: sales_order(k)),
    ],
)
def test_an_event_naming_a_packet_is_no_evidence_for_passing_over_the_ones_before_it(
    h, table, consumed, named, rows
):
    """The issue's cases: {sales_order: 99} with consumed 7 and 8-99 absent, {design: 40},
    {sales_order: 3} with neither 2 nor 3 there. Nothing passed over, nothing committed."""
    h.invoke(*h.upload_dimensions())
    _consumed_through(h, table, consumed, rows)
    commits = h.processed.list_keys(keys.COMMITS)
    h.metric_stream = io.StringIO()
    with pytest.raises(MissingPacketError, match=f"{table}:{consumed + 1} has no objects.*nothing is passed over"):
        h.invoke(f"{table}:{named}")
    assert h.processed.list_keys(keys.COMMITS) == commits
    assert h.consumed(table) == consumed
    assert not any("PacketsProcessed" in m for m in h.metrics())
    # The ingestion writes the packets after all: every one is processed, none lost.
    for k in range(consumed + 1, named + 1):
        h.upload(table, k, [rows(k)])
    h.invoke()
    assert h.consumed(table) == named
    assert all(json.loads(h.processed.read(keys.commit_key(table, k)))["missing"] is False
               for k in range(consumed + 1, named + 1))
    h.check_invariants()


def test_a_missing_packet_with_a_later_one_in_the_bucket_is_passed_over_with_an_error_and_a_metric(h, caplog):
    h.invoke(*h.upload_dimensions())
    _consumed_through(h, "sales_order", 7, lambda k: sales_order(k))
    h.upload("sales_order", 9, [sales_order(9)])
    summary = h.invoke("sales_order:9")
    assert [(o.packet, o.status) for o in summary.outcomes] == [("sales_order:8", "passed_over"), ("sales_order:9", "committed")]
    [passed] = [r for r in caplog.records if "passed over" in r.getMessage()]
    assert passed.levelname == "ERROR" and passed.packet == "sales_order:8" and passed.evidence == "sales_order:9"
    assert any(m.get("PacketGap") and m["table"] == "sales_order" for m in h.metrics())
    assert h.consumed("sales_order") == 9
    assert json.loads(h.processed.read(keys.commit_key("sales_order", 8)))["missing"] is True
    h.check_invariants()


def test_the_newest_named_packet_with_no_objects_is_a_retryable_error(h):
    with pytest.raises(MissingPacketError, match="staff:1"):
        h.invoke("staff:1")
    assert h.processed.list_keys(keys.PENDING) != []  # kept for the retry
    h.invoke(*h.upload_dimensions())  # the ingestion finished writing it
    assert h.consumed("staff") == 1
    h.check_invariants()


def test_a_missing_packet_is_passed_over_once_a_later_one_is_named_in_another_event(h):
    with pytest.raises(MissingPacketError):
        h.invoke("currency:1")
    h.upload("currency", 2, [{"currency_id": 1, "currency_code": "GBP", "created_at": "2022-11-03T14:20:49",
                              "last_updated": "2022-11-03T14:20:49"}])
    h.invoke("currency:2")
    assert h.consumed("currency") == 2 and h.output_numbers("dim_currency") == [1]


def test_objects_of_a_packet_are_all_read_in_key_order_gz_included(h):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1)], part="_a")
    h.upload("sales_order", 1, [sales_order(2)], part="_b", gz=True)
    h.upload("sales_order", 10, [sales_order(10)])  # packet 10 must not be read as packet 1
    h.invoke("sales_order:1")
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 2]


def test_an_unreadable_object_fails_the_packet_and_holds_later_ones(h):
    h.invoke(*h.upload_dimensions())
    h.ingestion.put("sales_order/sales_order_packet_1_x.jsonl.gz", b"not gzip")
    h.upload("sales_order", 2, [sales_order(2)])
    with pytest.raises(UnreadableObjectError, match="sales_order_packet_1_x"):
        h.invoke("sales_order:1")
    with pytest.raises(UnreadableObjectError):
        h.invoke("sales_order:2")  # the pending packet 1 goes first, and fails again
    assert h.consumed("sales_order") == 0 and h.output_keys("fact_sales_order") == []
    h.ingestion.objects.pop("sales_order/sales_order_packet_1_x.jsonl.gz")
    h.upload("sales_order", 1, [sales_order(1)])  # fixed
    h.invoke()  # any next invocation resumes, even an empty one
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 2]
    h.check_invariants()


def test_an_output_key_holding_other_content_raises_file_exists_error(h):
    named = h.upload_dimensions()
    h.invoke(*named)
    commit = keys.commit_key("sales_order", 1)
    h.upload("sales_order", 1, [sales_order(1)])
    h.processed.objects["fact_sales_order/fact_sales_order_packet_1_processed_20221103T142052.186000Z.parquet"] = b"x"
    with pytest.raises(FileExistsError) as error:
        h.invoke("sales_order:1")
    assert isinstance(error.value, OutputConflictError)
    assert h.processed.read(commit) is None


def test_a_corrupt_commit_record_is_a_typed_error(h):
    h.invoke(*h.upload_dimensions())
    h.processed.objects[keys.commit_key("staff", 1)] = b"{not json"
    h.upload("staff", 2, [staff(2)])
    with pytest.raises(CorruptRecordError, match="staff_packet_1"):
        h.invoke("staff:2")


def test_validation_reports_and_metrics_count_rejected_rows(h, caplog):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, staff_id=9), "garbage"])
    summary = h.invoke("sales_order:1")
    # The garbage line needs a fix at the source; order 2 waits for staff 9.
    assert summary.rows_rejected() == {"fact_sales_order": 1}
    assert summary.rows_waiting() == {"fact_sales_order": 1}
    [fact_report] = [r for r in summary.outcomes[0].reports if r.table == "fact_sales_order"]
    assert fact_report.to_log()["rows_in"] == 3
    assert {c["column"] for c in fact_report.to_log()["failed_checks"]} == {"*", "sales_staff_id"}
    [metric] = [m for m in h.metrics() if m["table"] == "fact_sales_order" and "wait" not in m]
    assert (metric["RowsWritten"], metric["RowsRejected"], metric["RowsWaiting"]) == (1, 1, 1)
    assert metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["table"]]
    logged = [r.validation for r in caplog.records if hasattr(r, "validation")]
    assert logged.count(fact_report.to_log() | {"objects": 1, "empty_objects": 0}) == 1
    json.dumps(logged)  # one JSON line each


def test_an_operators_replay_re_offers_what_is_left_and_writes_nothing_twice(h):
    from runtime.pipeline import request_replay

    rows = [sales_order(1), sales_order(2, units_sold=-5), "broken", sales_order(3, staff_id=7)]
    h.upload("sales_order", 1, rows)
    h.invoke("sales_order:1")  # no dimensions yet: 1 and 3 wait, 2 and the broken line are rejected
    waiting = [r for r in h.quarantine("fact_sales_order", "sales_order:1") if "_waits_for" in r]
    assert [r["sales_order_id"] for r in waiting] == [1, 3]
    h.invoke(*h.upload_dimensions())  # their arrival replays the waiting facts by itself
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    assert request_replay(h.processed) == 1
    summary = h.invoke()
    assert [o.packet for o in summary.outcomes] == ["replay:1"]
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    # Only the waiting row is offered again (a rejected row needs a fix at the source),
    # and it still names where it came from.
    kept = [json.loads(l) for l in h.processed.read(keys.replay_quarantine_key("fact_sales_order", 1)).splitlines()]
    assert [(r["sales_order_id"], r["_packet"], r["_line"], r["_waits_for"]) for r in kept] == [(3, 1, 4, {"staff": 7})]
    assert kept[0]["_object"] == h.ingestion.list_keys("sales_order/")[0]
    # The next replay takes only the files no replay took: the rows are offered once each.
    assert request_replay(h.processed) == 2
    assert [o.packet for o in h.invoke().outcomes] == ["replay:2"]
    second = json.loads(h.processed.read(keys.replay_commit_key(2)))
    assert second["replayed"] == [keys.replay_quarantine_key("fact_sales_order", 1)]
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    h.check_invariants()


def test_purchases_and_payments_waiting_for_dimensions_are_written_when_they_arrive(h):
    from tests.support.harness import payment, payment_type, purchase_order, transaction

    h.invoke(*h.upload_dimensions())
    h.upload("purchase_order", 1, [purchase_order(1), purchase_order(2, staff_id=2)])
    h.upload("payment", 1, [payment(1, transaction_id=1), payment(2, transaction_id=2)])
    h.invoke("purchase_order:1", "payment:1")  # no staff 2, no transactions, no payment types yet
    assert [r["purchase_order_id"] for r in h.rows("fact_purchase_order")] == [1]
    assert h.rows("fact_payment") == []
    assert h.quarantine("fact_payment", "payment:1")[0]["_waits_for"] == {"transaction": 1, "payment_type": 1}
    h.upload("payment_type", 1, [payment_type(1)])
    h.upload("transaction", 1, [transaction(1, "SALE", 1, None), transaction(2, "PURCHASE", None, 2)])
    h.upload("staff", 2, [staff(2, 1, "Deron", "Beier")])
    summary = h.invoke("payment_type:1", "transaction:1", "staff:2")
    # The arrivals queue one replay, after the event's packets: it writes every waiting fact.
    assert [o.packet for o in summary.outcomes][:3] == ["staff:2", "payment_type:1", "transaction:1"]
    assert sorted(r["purchase_order_id"] for r in h.rows("fact_purchase_order")) == [1, 2]
    assert sorted(r["payment_id"] for r in h.rows("fact_payment")) == [1, 2]
    # One replay wrote both facts, with one dim_date packet holding the dates of both.
    replay_dates = h.table("dim_date", 2)["date_id"].to_pylist()
    facts = h.table("fact_payment", 1).to_pylist() + h.table("fact_purchase_order", 2).to_pylist()
    referenced = {f[c] for f in facts for c in f if c.endswith("_date")}
    assert set(replay_dates) == referenced
    assert h.output_numbers("dim_date") == [1, 2]  # purchase_order:1, then the replay
    h.check_invariants()


# -- late packets ---------------------------------------------------------------------


def _passed_over(h, table, rows_of):
    """Packet 1, then packet 3 with packet 2 missing: 2 is passed over."""
    h.upload(table, 1, rows_of(1))
    h.upload(table, 3, rows_of(3))
    h.invoke(f"{table}:3")
    assert json.loads(h.processed.read(keys.commit_key(table, 2)))["missing"] is True


def test_a_late_packet_is_reported_as_an_error_never_as_already_processed(h, caplog):
    from runtime.operations import status

    h.invoke(*h.upload_dimensions())
    _passed_over(h, "sales_order", lambda k: [sales_order(k)])
    assert status(h.processed, h.ids, "/totesys/processing")["open_gaps"] == ["sales_order:2"]
    h.upload("sales_order", 2, [sales_order(2)])  # its objects arrive after all
    caplog.clear()
    h.metric_stream = io.StringIO()
    summary = h.invoke("sales_order:2")  # named again
    assert summary.late == ["sales_order:2"] and summary.already_processed == []
    assert not any("already processed" in r.getMessage() for r in caplog.records)
    [late] = [r for r in caplog.records if "late packet" in r.getMessage()]
    assert late.levelname == "ERROR" and late.packet == "sales_order:2" and late.named_again is True
    assert [m["LatePacket"] for m in h.metrics() if "LatePacket" in m] == [1]
    # Any later invocation, named or not, reports it again until it is processed.
    h.metric_stream = io.StringIO()
    assert h.invoke().late == ["sales_order:2"]
    assert [m["table"] for m in h.metrics() if "LatePacket" in m] == ["sales_order"]
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 3]


def test_the_operator_processes_a_late_packet_once_its_facts_taking_the_next_numbers(h):
    from runtime.operations import OperationRefused, late

    h.invoke(*h.upload_dimensions())
    _passed_over(h, "sales_order", lambda k: [sales_order(k)])
    with pytest.raises(OperationRefused, match="no objects"):
        late(h.processed, h.ingestion, "sales_order", 2)
    h.upload("sales_order", 2, [sales_order(2), "broken"])
    with pytest.raises(OperationRefused, match="not passed over"):
        late(h.processed, h.ingestion, "sales_order", 3)
    late(h.processed, h.ingestion, "sales_order", 2)
    with pytest.raises(OperationRefused, match="pending late processing already"):
        late(h.processed, h.ingestion, "sales_order", 2)
    summary = h.invoke()
    assert [(o.packet, o.status) for o in summary.outcomes] == [("sales_order:2", "late")]
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 3, 2]
    assert h.output_numbers("fact_sales_order") == [1, 2, 3] and h.output_numbers("dim_date") == [1, 2, 3]
    assert h.consumed("sales_order") == 3
    record = json.loads(h.processed.read(keys.late_commit_key("sales_order", 2)))
    assert record["late"] == {"after": 3, "seq": 0} and len(record["quarantine"]) == 1
    assert h.processed.list_keys(keys.GAPS) == []
    assert h.invoke("sales_order:2").late == []  # the gap is closed: nothing to report
    with pytest.raises(OperationRefused, match="processed late already"):
        late(h.processed, h.ingestion, "sales_order", 2)
    h.check_invariants()


def test_a_late_dimension_packet_follows_the_state_rules(h):
    from runtime.operations import late

    h.invoke(*h.upload_dimensions(staff=[staff(1, 1, updated="2023-01-01T00:00:00")]))
    h.upload("staff", 3, [staff(2, 1, "Deron", "Beier", updated="2023-01-03T00:00:00")])
    h.invoke("staff:3")  # staff:2 passed over
    h.upload("staff", 2, [staff(1, 1, "Old", updated="2022-06-01T00:00:00"),  # older than the state
                          staff(3, 1, "Ann", "Lee", updated="2023-01-02T00:00:00")])
    late(h.processed, h.ingestion, "staff", 2)
    h.invoke()
    assert h.table("dim_staff", 3)["staff_id"].to_pylist() == [3]  # the older row is not emitted
    # The late rows are in the state now: a department change re-emits them, and a fact
    # of staff 3 is written.
    h.upload("department", 2, [department(1, "Sales", "Leeds", updated="2023-02-01T00:00:00")])
    h.upload("sales_order", 1, [sales_order(1, staff_id=3)])
    h.invoke("department:2", "sales_order:1")
    assert h.table("dim_staff", 4)["staff_id"].to_pylist() == [1, 2, 3]
    assert h.table("dim_staff", 4)["first_name"].to_pylist()[0] == "Jeremie"
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    h.check_invariants()


# -- facts already written ------------------------------------------------------------


def _fact_report(summary):
    [report] = [r for o in summary.outcomes for r in o.reports if r.table == "fact_sales_order"]
    return report


def test_an_exact_re_send_in_a_later_packet_is_skipped_with_its_reason_and_counted(h, caplog):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1), sales_order(2, updated="2022-11-03T14:20:53")])
    h.invoke("sales_order:1")
    # The ingestion re-sends its boundary row (order 2, same version, same content).
    h.upload("sales_order", 2, [sales_order(2, updated="2022-11-03T14:20:53"), sales_order(3)])
    summary = h.invoke("sales_order:2")
    assert sorted(h.fact_versions().values()) == [1, 1, 1]
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 2, 3]
    report = _fact_report(summary)
    assert (report.rows_in, report.rows_written, report.rows_skipped, report.rows_rejected) == (2, 1, 1, 0)
    [skipped] = [r for r in caplog.records if "already written" in r.getMessage()]
    assert skipped.ids == [2] and skipped.rows_skipped == 1 and "earlier packet" in skipped.reason
    assert not any(m.get("SilentMutation") for m in h.metrics())
    # The memory is named in the commit record, as the state is.
    record = json.loads(h.processed.read(keys.commit_key("sales_order", 2)))
    assert record["state"] == keys.history_manifest_key("sales_order", 2)
    h.check_invariants()


def test_a_re_send_that_writes_nothing_is_remembered_as_sent_by_its_packet(h):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 2, [sales_order(1)])
    h.invoke("sales_order:2")
    assert h.output_numbers("fact_sales_order") == [1]
    # Nothing written, but the memory knows packet 2 sent that version last: a row of
    # it still waiting from an earlier packet is superseded (docs/design.md#waits-and-replays).
    then = keys.history_then_key("sales_order", 1, 2)
    assert json.loads(h.processed.read(keys.commit_key("sales_order", 2)))["state"] == then
    h.upload("sales_order", 3, [sales_order(2)])
    h.invoke("sales_order:3")  # the next packet reads the memory through it
    assert json.loads(h.processed.read(keys.commit_key("sales_order", 3)))["state"] == keys.history_manifest_key(
        "sales_order", 2)


def test_a_changed_row_under_a_version_already_written_is_written_and_reported(h, caplog):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1), sales_order(2)])
    h.invoke("sales_order:1")
    # The source changed order 2 without touching last_updated.
    h.upload("sales_order", 2, [sales_order(2, units_sold=7), sales_order(1)])
    h.metric_stream = io.StringIO()
    summary = h.invoke("sales_order:2")
    assert [(r["sales_order_id"], r["units_sold"]) for r in h.rows("fact_sales_order")] == [
        (1, 42972), (2, 42972), (2, 7)]
    [warning] = [r for r in caplog.records if "came back changed" in r.getMessage()]
    assert warning.levelname == "WARNING" and warning.ids == [2] and warning.rows == 1
    assert [m["SilentMutation"] for m in h.metrics() if "SilentMutation" in m] == [1]
    assert _fact_report(summary).rows_skipped == 1  # order 1: an exact re-send
    # The changed row is the newest truth: sent again as it is now, it is a re-send.
    h.upload("sales_order", 3, [sales_order(2, units_sold=7)])
    h.invoke("sales_order:3")
    assert len(h.rows("fact_sales_order")) == 3
    h.check_invariants()


def test_late_facts_join_the_memory(h):
    from runtime.operations import late

    h.invoke(*h.upload_dimensions())
    _passed_over(h, "sales_order", lambda k: [sales_order(k)])
    h.upload("sales_order", 2, [sales_order(2)])
    late(h.processed, h.ingestion, "sales_order", 2)
    h.invoke()
    h.upload("sales_order", 4, [sales_order(2), sales_order(3)])  # both written already
    h.invoke("sales_order:4")
    assert sorted(h.fact_versions().values()) == [1, 1, 1]
    h.check_invariants()


# -- empty packets and objects ----------------------------------------------------------


def test_a_packet_of_a_zero_byte_object_commits_with_a_warning_and_is_counted(h, caplog):
    h.invoke(*h.upload_dimensions())
    key = f"{keys.packet_prefix('sales_order', 1)}ingested_20241114T153409.845000Z.jsonl"
    h.ingestion.put(key, b"")
    summary = h.invoke("sales_order:1")
    assert summary.empty_packets() == ["sales_order:1"] and summary.outcomes[0].empty_objects == (key,)
    warnings = {r.getMessage(): r for r in caplog.records if r.levelname == "WARNING"}
    assert warnings["objects that hold no lines"].keys == [key]
    assert "packet holds no rows: legal, but unusual" in warnings
    [report] = [r.validation for r in caplog.records if hasattr(r, "validation")
                and r.validation["source_packet"] == "sales_order:1"]
    assert (report["table"], report["rows_in"], report["objects"], report["empty_objects"]) == (
        "fact_sales_order", 0, 1, 1)
    assert h.consumed("sales_order") == 1 and h.output_keys("fact_sales_order") == []
    h.check_invariants()


def test_a_packet_counts_the_lines_of_each_object_and_its_non_blank_lines_apart(h):
    """What the reading counted, typed: no sentinel key among the object keys."""
    from runtime.observability import Metrics
    from runtime.pipeline import Pipeline
    from runtime.records import PacketLines
    from tests.support.harness import PREFIX

    a = h.upload("sales_order", 1, [sales_order(1), "{broken", "", sales_order(2)], part="_a")
    b = h.upload("sales_order", 1, ["  "], part="_b")
    pipeline = Pipeline(h.ingestion, h.processed, h.ids, PREFIX, Metrics(stream=io.StringIO()))
    _, lines = pipeline.transform_packet("sales_order", "sales_order:1", [a, b])
    assert lines == PacketLines({a: 4, b: 1}, rows=3)


def test_an_empty_object_beside_others_is_a_warning_and_the_rest_is_written(h, caplog):
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1)], part="_a")
    h.ingestion.put(f"{keys.packet_prefix('sales_order', 1)}ingested_20241114T153409.845000Z_b.jsonl", b"")
    h.upload("sales_order", 1, ["", "  "], part="_c")  # blank lines only: lines, but no rows
    summary = h.invoke("sales_order:1")
    assert summary.empty_packets() == [] and len(summary.outcomes[0].empty_objects) == 1
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    [report] = [r.validation for r in caplog.records if getattr(r, "validation", {}).get("table") == "fact_sales_order"]
    assert (report["objects"], report["empty_objects"]) == (3, 1)
