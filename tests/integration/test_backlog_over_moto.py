"""The backlog rule and the bounded evidence look through the real handler and S3
adapter (moto): a context whose time runs out midway, then an empty event."""

from __future__ import annotations

from types import SimpleNamespace

from runtime import handler
from runtime.adapters.s3 import S3Bucket
from sandbox.seed import fixture_lines, upload_packet

CURRENCY = fixture_lines("currency")


def _context(looks: int) -> SimpleNamespace:
    """Plenty of time for the first `looks`, then less than the stop margin (the first
    packet of an invocation is done without a look)."""
    left = iter([600_000] * looks)
    return SimpleNamespace(aws_request_id="req", function_name="f", invoked_function_arn="arn",
                           memory_limit_in_mb=3008,
                           get_remaining_time_in_millis=lambda: next(left, 1_000))


def test_the_handler_stops_early_and_an_empty_event_finishes_the_rest(aws, monkeypatch):
    handler.reset()
    invoked = []
    monkeypatch.setattr(handler, "_lambda_client", lambda: SimpleNamespace(invoke=lambda **call: invoked.append(call)))
    for k in range(1, 5):
        upload_packet(aws.s3, aws.names.ingestion_bucket, "currency", k, CURRENCY[k - 1:k])
    line = handler.lambda_handler({"packets": [{"table": "currency", "id": 4}]}, _context(looks=1))
    assert line["status"] == "stopped_early"
    assert line["packets_processed"] == ["currency:1", "currency:2"]
    assert line["left_pending"] == ["currency:3..4"]
    assert line["continues"] == "invoked itself" and invoked[0]["Payload"] == b'{"packets": []}'
    assert aws.packet_id("consumed", "currency") == 2
    line = handler.lambda_handler({"packets": []}, _context(looks=100))  # what it invoked
    assert line["status"] == "succeeded" and line["left_pending"] is None and len(invoked) == 1
    assert line["packets_processed"] == ["currency:3", "currency:4"]
    assert aws.packet_id("consumed", "currency") == 4


def test_list_after_is_one_bounded_call_in_byte_order(aws):
    bucket = aws.names.ingestion_bucket
    for n in (1, 2, 10, 11, 100, 9):
        aws.s3.put_object(Bucket=bucket, Key=f"staff/staff_packet_{n}_x.jsonl", Body=b"{}\n")
    s3 = S3Bucket(aws.s3, bucket)
    assert s3.list_after("staff/staff_packet_", "staff/staff_packet_1`", 2) == [
        "staff/staff_packet_2_x.jsonl", "staff/staff_packet_9_x.jsonl"]
    assert s3.list_after("staff/staff_packet_", "staff/staff_packet_1/", 10) == [
        "staff/staff_packet_100_x.jsonl", "staff/staff_packet_10_x.jsonl", "staff/staff_packet_11_x.jsonl",
        "staff/staff_packet_1_x.jsonl", "staff/staff_packet_2_x.jsonl", "staff/staff_packet_9_x.jsonl"]


def test_evidence_far_ahead_is_found_over_s3_by_leading_digit_and_length(aws):
    """The evidence look's pages (Prefix by leading digit, StartAfter where a length
    begins) against S3's own byte order: packet 151 missing in a history of 150 with
    two objects each, the only later packet 890 (behind all of 2.. and 8..'s shorter
    numbers as text)."""
    from runtime.late import evidence_calls_bound, later_packet_with_objects

    bucket = aws.names.ingestion_bucket
    for n in [*range(1, 151), 890]:
        for part in range(2 if n != 890 else 1):
            aws.s3.put_object(Bucket=bucket, Key=f"staff/staff_packet_{n}_x{part}.jsonl", Body=b"{}\n")
    calls = []
    s3 = S3Bucket(aws.s3, bucket)
    listing = s3.list_after
    s3.list_after = lambda *args: calls.append(args) or listing(*args)
    assert later_packet_with_objects(s3, {}, "staff", 151) == 890
    assert 1 < len(calls) <= evidence_calls_bound(151)
    assert later_packet_with_objects(s3, {}, "staff", 891) is None
