"""The on-call commands: status, skipping a poison packet, redriving the dead-letter queue."""

import json

import pytest

from runtime import keys
from runtime.errors import UnreadableObjectError
from runtime.operations import OperationRefused, redrive, skip, status
from tests.harness import PREFIX, Harness, sales_order


@pytest.fixture
def poisoned():
    h = Harness()
    h.invoke(*h.upload_dimensions())
    h.ingestion.put("sales_order/sales_order_packet_1_x.jsonl.gz", b"\x1f\x8b truncated")
    h.upload("sales_order", 2, [sales_order(2)])
    with pytest.raises(UnreadableObjectError):
        h.invoke("sales_order:1")
    with pytest.raises(UnreadableObjectError):
        h.invoke("sales_order:2")
    return h


def test_status_shows_what_is_held_back(poisoned):
    report = status(poisoned.processed, poisoned.ids, PREFIX)
    assert report["consumed"]["sales_order"] == 0 and report["consumed"]["staff"] == 1
    assert [p["packets"] for p in report["pending"]] == [[{"table": "sales_order", "id": 1}],
                                                          [{"table": "sales_order", "id": 2}]]


def test_skipping_the_poison_packet_lets_the_next_invocation_resume(poisoned, caplog):
    skip(poisoned.processed, poisoned.ids, PREFIX, "sales_order", 1, "truncated upload, re-sent as 2", "alice")
    summary = poisoned.invoke()
    assert [o.status for o in summary.outcomes] == ["skipped", "committed"]
    assert poisoned.consumed("sales_order") == 2
    assert [r["sales_order_id"] for r in poisoned.rows("fact_sales_order")] == [2]
    record = json.loads(poisoned.processed.read(keys.commit_key("sales_order", 1)))
    assert record["skipped"] == {"reason": "truncated upload, re-sent as 2", "by": "alice"}
    assert any("skipped by an operator" in r.getMessage() for r in caplog.records)
    poisoned.check_invariants()


@pytest.mark.parametrize(
    "table, packet, reason, by, says",
    [
        ("sales_order", 2, "r", "me", "not the next packet"),
        ("staff", 1, "r", "me", "not the next packet"),
        ("payments", 1, "r", "me", "not a consumed source table"),
        ("sales_order", 1, " ", "me", "needs a --reason"),
    ],
)
def test_a_skip_that_would_break_an_invariant_is_refused(poisoned, table, packet, reason, by, says):
    with pytest.raises(OperationRefused, match=says):
        skip(poisoned.processed, poisoned.ids, PREFIX, table, packet, reason, by)


def test_a_packet_that_got_as_far_as_writing_outputs_cannot_be_skipped():
    h = Harness()
    h.invoke(*h.upload_dimensions())
    h.processed.put("fact_sales_order/fact_sales_order_packet_1_processed_x.parquet", b"partial")
    with pytest.raises(OperationRefused, match="without a commit record"):
        skip(h.processed, h.ids, PREFIX, "sales_order", 1, "r", "me")


class FakeSqs:
    """Just enough of SQS for the redrive: messages as the on-failure destination sends them."""

    def __init__(self, bodies):
        self.messages = {str(i): json.dumps(b) for i, b in enumerate(bodies)}

    def receive_message(self, **_):
        return {"Messages": [{"MessageId": k, "ReceiptHandle": k, "Body": v} for k, v in list(self.messages.items())[:10]]}

    def delete_message(self, QueueUrl, ReceiptHandle):
        self.messages.pop(ReceiptHandle)


def test_redrive_re_invokes_each_parked_event_once_and_leaves_bad_ones():
    good = {"packets": [{"table": "staff", "id": 3}]}
    sqs = FakeSqs([{"requestPayload": good, "responsePayload": {"errorType": "MissingPacketError"}},
                   {"requestPayload": {"packets": "nope"}}])
    invoked = []
    assert redrive(sqs, "url", invoked.append) == [good]
    assert invoked == [good] and list(sqs.messages) == ["1"]
    assert redrive(sqs, "url", invoked.append) == []  # safe to run again
