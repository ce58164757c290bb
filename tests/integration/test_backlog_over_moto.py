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
