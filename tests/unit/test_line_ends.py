"""Line ends and carriage returns at the input boundary (docs/design.md#line-screen).

A line ends at LF; a CR right before the LF belongs to the line end; any other CR is
JSON whitespace (RFC 8259). The line limit counts a line without its end.
"""

from __future__ import annotations

import json

import pytest

from runtime import keys
from runtime.reading import MAX_LINE_BYTES, parse_objects
from runtime.tables import SOURCES
from runtime.validation import QUARANTINE_RAW_BYTES, quarantine_jsonl
from tests.support.harness import Harness, sales_order

SALES = SOURCES["sales_order"]


def row(n: int) -> bytes:
    return json.dumps(sales_order(n)).encode()


def padded(n: int, length: int) -> bytes:
    """Sales order n as a line of exactly `length` bytes (an ignored field pads it)."""
    head = row(n)[:-1] + b', "padding": "'
    return head + b"x" * (length - len(head) - 2) + b'"}'


def broken(packet) -> list[tuple[int, bytes, tuple[str, ...]]]:
    """(1-based line, exact text, reasons) of every line set aside, in line order."""
    found = {}
    for f in packet.failures:
        if f.column == "*":
            for n, reason in zip(f.lines.tolist(), f.row_reasons):
                found[n] = reason
    return [(packet.text.line(n).number, bytes(packet.text.line(n)), found[n]) for n in sorted(found)]


# -- the line limit counts a line without its end --------------------------------------


@pytest.mark.parametrize("block_bytes", [97, 1 << 20, 32 << 20])
@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_a_line_of_exactly_the_limit_is_a_row_whatever_its_line_end(end, block_bytes):
    exact = padded(2, MAX_LINE_BYTES)
    assert len(exact) == MAX_LINE_BYTES
    body = row(1) + end + exact + end + row(3) + end
    packet = parse_objects(SALES, [("k.jsonl", body)], block_bytes)
    assert packet.rows["sales_order_id"].to_pylist() == [1, 2, 3]
    assert (packet.lines, packet.blank, packet.failures) == (3, 0, ())


@pytest.mark.parametrize("block_bytes", [97, 1 << 20, 32 << 20])
@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_a_line_one_byte_over_the_limit_is_rejected_and_its_length_counts_no_line_end(end, block_bytes):
    over = padded(2, MAX_LINE_BYTES + 1)
    body = row(1) + end + over + end + row(3) + end
    packet = parse_objects(SALES, [("k.jsonl", body)], block_bytes)
    assert packet.rows["sales_order_id"].to_pylist() == [1, 3]
    reason = f"longer than the 1,048,576-byte line limit ({MAX_LINE_BYTES + 1:,} bytes)"
    assert [(n, reason_) for n, _, reason_ in broken(packet)] == [(2, reason)]
    [kept] = [json.loads(q) for q in quarantine_jsonl(packet.text.lines, list(packet.failures)).splitlines()]
    assert kept["_length"] == MAX_LINE_BYTES + 1 and kept["_raw"] == over[:QUARANTINE_RAW_BYTES].decode()


# -- a CR anywhere else is whitespace -------------------------------------------------


@pytest.mark.parametrize("block_bytes", [1, 64, 1 << 20])
def test_whitespace_only_lines_holding_a_cr_are_blank(block_bytes):
    blanks = [b"\r", b" \r ", b"\r\r", b"\t\r \r", b"\r \t"]
    body = b"".join(b + e for b in blanks for e in (b"\n", b"\r\n")) + row(1) + b"\n"
    packet = parse_objects(SALES, [("k.jsonl", body)], block_bytes)
    assert (packet.lines, packet.blank, packet.failures) == (11, 10, ())
    assert packet.rows["__line"].to_pylist() == [10]


@pytest.mark.parametrize("block_bytes", [1, 64, 1 << 20])
def test_a_cr_between_tokens_or_before_the_crlf_keeps_the_row_with_its_values(block_bytes):
    lines = [
        row(1).replace(b'"sales_order_id": 1,', b'"sales_order_id":\r1\r,'),
        b"\r" + row(2) + b"\r",
        row(3) + b"\r\r",  # then CRLF: the last CR is the line end, the others whitespace
        row(4).replace(b", ", b",\r"),
        b" \r\t" + row(5).replace(b": ", b"\r:\r"),
    ]
    body = b"".join(line + (b"\r\n" if n % 2 else b"\n") for n, line in enumerate(lines))
    packet = parse_objects(SALES, [("k.jsonl", body)], block_bytes)
    assert packet.failures == ()
    assert packet.rows["sales_order_id"].to_pylist() == [1, 2, 3, 4, 5]
    assert packet.rows["__line"].to_pylist() == [0, 1, 2, 3, 4]
    assert packet.rows["units_sold"].to_pylist() == [42972] * 5


def test_a_cr_inside_a_string_is_not_json_and_rejects_the_row_kept_exactly():
    inside = row(2).replace(b'"2022-11-07"', b'"2022-11-07\r"')
    escaped = row(3).replace(b'"2022-11-07"', b'"2022-11-07\\r"')  # an escaped CR: a value, not a CR
    body = row(1) + b"\n" + inside + b"\r\n" + escaped + b"\n"
    packet = parse_objects(SALES, [("k.jsonl", body)])
    assert packet.rows["sales_order_id"].to_pylist() == [1]  # 3 fails its date, as a value
    [(number, text, reason)] = broken(packet)
    assert (number, text) == (2, inside)
    assert "string" in reason
    [date_failure] = [f for f in packet.failures if f.column == "agreed_delivery_date"]
    assert date_failure.lines.tolist() == [2]


@pytest.mark.parametrize("block_bytes", [1, 64, 1 << 20])
def test_rows_separated_by_lone_crs_are_one_line_rejected_whole_with_its_exact_text(block_bytes):
    joined = row(2) + b"\r" + row(3) + b"\r" + row(4)
    body = row(1) + b"\n" + joined + b"\r\n" + b"\r\n" + row(5) + b"\n"
    packet = parse_objects(SALES, [("k.jsonl", body)], block_bytes)
    assert packet.rows["sales_order_id"].to_pylist() == [1, 5]
    assert packet.rows["__line"].to_pylist() == [0, 3]
    assert [(n, text) for n, text, _ in broken(packet)] == [(2, joined)]
    assert (packet.lines, packet.blank) == (4, 1)


# -- through the pipeline: accounting and quarantine line numbers -------------------------


def test_through_the_pipeline_crs_as_whitespace_keep_the_accounting_and_line_numbers_exact():
    h = Harness()
    h.invoke(*h.upload_dimensions())
    lines = [
        row(1).replace(b", ", b",\r"),
        b" \r ",
        row(2) + b"\r" + row(3),
        padded(4, MAX_LINE_BYTES),
        row(5).replace(b'"2022-11-07"', b'"2022-11-07\r"'),
        b"\r",
        row(6),
    ]
    key = f"{keys.packet_prefix('sales_order', 1)}ingested_20241114T153409.845000Z.jsonl"
    h.ingestion.put(key, b"".join(line + b"\r\n" for line in lines))
    summary = h.invoke("sales_order:1")
    assert sorted(r["sales_order_id"] for r in h.rows("fact_sales_order")) == [1, 4, 6]
    quarantined = [
        json.loads(line)
        for line in (h.processed.read(keys.quarantine_key("fact_sales_order", "sales_order", 1)) or b"").splitlines()
    ]
    assert [(q["_line"], q["_raw"].encode()) for q in quarantined] == [(3, lines[2]), (5, lines[4])]
    [report] = [r for o in summary.outcomes for r in o.reports if r.table == "fact_sales_order"]
    assert (report.lines, report.rows_written, report.rows_rejected, report.rows_skipped, report.blank) == (7, 3, 2, 0, 2)
