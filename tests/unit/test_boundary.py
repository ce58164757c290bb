"""The input boundary (docs/design.md#line-screen): one test per defect class found by trying hostile
input, each through the real reading path and the pipeline over in-memory ports."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import keys
from runtime.errors import UnreadableObjectError
from runtime.pipeline import request_replay
from runtime.reading import MAX_LINE_BYTES, parse_objects
from runtime.tables import SOURCES
from runtime.validation import MAX_DEPTH, QUARANTINE_RAW_BYTES
from tests.support.harness import Harness, encode_lines, sales_order, staff

SALES = SOURCES["sales_order"]
ROOT = Path(__file__).resolve().parents[2]


def strict_loads(line: bytes):
    """json.loads that refuses what RFC 8259 does not allow."""
    def refuse(constant):
        raise ValueError(f"{constant} in a quarantine line")
    return json.loads(line, parse_constant=refuse)


def quarantine_of(h: Harness, packet: str = "sales_order:1") -> list[dict]:
    table, k = packet.split(":")
    data = h.processed.read(keys.quarantine_key("fact_sales_order", table, int(k))) or b""
    return [strict_loads(line) for line in data.splitlines()]


# Once the work is done and printed, the child leaves without interpreter teardown:
# pyarrow's thread pools sometimes abort the process at exit ("terminate called
# without an active exception", with or without this change, whatever the input).
_LEAVE = "\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n"


def run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + _LEAVE], cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )


# -- a process crash on one line (apache/arrow#47409) ------------------------------


def test_pyarrow_alone_still_crashes_on_a_null_line_which_is_why_it_never_sees_one():
    done = run_child("""
        import pyarrow as pa, pyarrow.json as pj
        pj.read_json(pa.BufferReader(b"null\\n"),
                     parse_options=pj.ParseOptions(explicit_schema=pa.schema([("a", pa.int64())])))
    """)
    # If this starts passing, pyarrow fixed the crash; the screen stays (a null line is
    # still not a row).
    assert done.returncode != 0


@pytest.mark.parametrize("body", [b"null\n", b"\n  null\n", b"null {\"a\": 1}\n", b"  null  \r\n"])
def test_a_null_line_is_a_rejected_row_never_a_crash_in_the_reading_path(body):
    done = run_child(f"""
        import json
        from runtime.reading import parse_objects
        from runtime.tables import SOURCES
        from tests.support.harness import encode_lines, sales_order
        body = {body!r} + encode_lines([sales_order(1)]) + {body!r}
        packet = parse_objects(SOURCES["sales_order"], [("k.jsonl", body)])
        print(json.dumps({{"rows": packet.rows["sales_order_id"].to_pylist(),
                           "rejected": sorted(int(n) for f in packet.failures for n in f.lines),
                           "lines": packet.lines, "blank": packet.blank}}))
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["rows"] == [1]
    assert got["lines"] == 1 + 2 * body.count(b"\n")
    assert len(got["rejected"]) + got["blank"] + 1 == got["lines"]


def test_a_null_line_through_the_pipeline_is_quarantined_and_the_packet_commits():
    done = run_child("""
        import json
        from runtime import keys
        from tests.support.harness import Harness, sales_order
        h = Harness()
        h.invoke(*h.upload_dimensions())
        h.upload("sales_order", 1, ["null", sales_order(1), "", "null", sales_order(2)])
        h.invoke("sales_order:1")
        quarantine = h.processed.read(keys.quarantine_key("fact_sales_order", "sales_order", 1))
        print(json.dumps({"written": [r["sales_order_id"] for r in h.rows("fact_sales_order")],
                          "quarantine": [json.loads(l) for l in quarantine.splitlines()],
                          "consumed": h.consumed("sales_order")}))
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["written"] == [1, 2] and got["consumed"] == 1
    assert [(q["_line"], q["_raw"]) for q in got["quarantine"]] == [(1, "null"), (4, "null")]
    assert all(q["_reasons"] == ["not a JSON object: null"] for q in got["quarantine"])


# -- a row lost and another written twice -------------------------------------------


def test_two_values_on_a_line_and_a_blank_line_keep_every_line_number_and_the_replay_exact(caplog):
    h = Harness()
    h.invoke(*h.upload_dimensions())
    two = json.dumps(sales_order(2)) + json.dumps(sales_order(3))
    h.upload("sales_order", 1, [sales_order(1), "", two, sales_order(4, staff_id=2), "   ", sales_order(5)])
    h.invoke("sales_order:1")
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 5]
    raw, waiting = quarantine_of(h)
    assert (raw["_line"], raw["_raw"], raw["_reasons"]) == (3, two, ["several JSON values on one line"])
    assert (waiting["_line"], waiting["sales_order_id"], waiting["_waits_for"]) == (4, 4, {"staff": 2})
    [report] = [r.getMessage() and r.validation for r in caplog.records
                if getattr(r, "validation", {}).get("table") == "fact_sales_order"]
    assert (report["lines"], report["rows_written"], report["rows_rejected"], report["rows_skipped"],
            report["lines_blank"]) == (6, 2, 2, 0, 2)

    # Staff 2 arrives: the waiting order is written, once; the broken line never.
    h.upload("staff", 2, [staff(2, 1, "Bo", "Ng", updated="2023-01-01T00:00:00")])
    h.invoke("staff:2")
    assert request_replay(h.processed) >= 1
    h.invoke()
    assert sorted(r["sales_order_id"] for r in h.rows("fact_sales_order")) == [1, 4, 5]
    assert h.fact_versions().most_common(1)[0][1] == 1
    h.check_invariants()


def test_the_replay_reads_quarantine_files_of_the_old_format_too():
    h = Harness()
    old = [
        {**sales_order(7), "_reasons": ["sales_staff_id: refers to a known staff"], "_waits_for": {"staff": 1}},
        {"_raw": "{broken", "_reasons": ["not a valid row: Invalid value."]},
    ]
    key = keys.quarantine_key("fact_sales_order", "sales_order", 1)
    h.processed.put(key, b"".join(json.dumps(r).encode() + b"\n" for r in old))
    h.invoke(*h.upload_dimensions())
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [7]
    # Only waits are offered again (docs/design.md#waits-and-replays): the broken line,
    # rejected for good, stays where it is and no replay quarantines it again.
    assert h.processed.list_keys(keys.quarantine_prefix("fact_sales_order")) == [key]
    assert strict_loads(h.processed.read(key).splitlines()[1])["_raw"] == "{broken"


# -- an untyped RecursionError from deep nesting --------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200_000])
def test_deep_nesting_is_a_rejected_row_kept_raw_never_a_recursion_error(depth):
    h = Harness()
    h.invoke(*h.upload_dimensions())
    nested = "[" * depth + "]" * depth
    lines = [
        sales_order(1),
        nested,  # not an object, deep
        json.dumps(sales_order(2))[:-1] + f', "x": {nested}}}',  # deep inside an ignored field
        json.dumps(sales_order(3, staff_id=99))[:-1] + ', "x": ' + '{"y": ' * depth + "1" + "}" * depth + "}",
        sales_order(4),
    ]
    h.upload("sales_order", 1, lines)
    h.invoke("sales_order:1")
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 4]
    quarantined = quarantine_of(h)
    assert [q["_line"] for q in quarantined] == [2, 3, 4]
    for q, line in zip(quarantined, lines[1:4]):
        assert q["_raw"] == line[:QUARANTINE_RAW_BYTES]
    assert quarantined[0]["_reasons"] == ["not a JSON object: an array"]
    assert quarantined[1]["_reasons"] == [f"nested deeper than {MAX_DEPTH} levels"]


# -- one oversized line fails the packet -----------------------------------------------


def test_an_oversized_line_is_one_rejected_row_and_the_packet_commits():
    h = Harness()
    h.invoke(*h.upload_dimensions())
    huge = json.dumps(sales_order(2))[:-1] + ', "x": "' + "a" * (MAX_LINE_BYTES + 10) + '"}'
    h.upload("sales_order", 1, [sales_order(1), huge, sales_order(3)])
    h.invoke("sales_order:1")
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 3]
    [q] = quarantine_of(h)
    assert q["_line"] == 2 and q["_length"] == len(huge)
    assert q["_raw"] == huge[:QUARANTINE_RAW_BYTES]
    assert q["_reasons"] == [f"longer than the 1,048,576-byte line limit ({len(huge):,} bytes)"]


# -- quarantine lines that are not JSON ------------------------------------------------


def test_nan_and_infinity_never_reach_the_quarantine_bare():
    h = Harness()
    h.invoke(*h.upload_dimensions())
    row = json.dumps(sales_order(2, staff_id=99))[:-1]
    lines = [
        "NaN",
        "-Infinity",
        json.dumps(sales_order(1))[:-1] + ', "units_sold": NaN}',  # duplicate key and NaN
        row + ', "x": NaN}',  # NaN in an ignored field of a row rejected for its staff
        row.replace('"sales_order_id": 2', '"sales_order_id": 3') + ', "x": 1e999}',
        row.replace('"sales_order_id": 2', '"sales_order_id": 4') + ', "x": Infinity}',
    ]
    h.upload("sales_order", 1, lines)
    h.invoke("sales_order:1")
    quarantined = quarantine_of(h)  # strict: refuses NaN and Infinity
    assert [q["_line"] for q in quarantined] == [1, 2, 3, 4, 5, 6]
    assert [q["_raw"] for q in quarantined] == lines
    assert h.rows("fact_sales_order") == []


def test_duplicate_keys_reject_the_row_and_keep_it_raw():
    line = json.dumps(sales_order(2))[:-1] + ', "staff_id": 5}'
    packet = parse_objects(SALES, [("k.jsonl", encode_lines([sales_order(1), line]))])
    assert packet.rows["sales_order_id"].to_pylist() == [1]
    [failure] = packet.failures
    assert "specified twice" in failure.row_reasons[0]


# -- a 0-byte .jsonl.gz ------------------------------------------------------------------


@pytest.mark.parametrize("body, says", [
    (b"", "0 bytes"),
    (b"{\"a\": 1}\n", "no gzip header"),
    (gzip.compress(encode_lines([sales_order(1)] * 50))[:-9], "not a valid gzip"),
])
def test_a_0_byte_or_broken_jsonl_gz_is_an_unreadable_object(body, says):
    with pytest.raises(UnreadableObjectError, match=says):
        parse_objects(SALES, [("x.jsonl.gz", body)])
    h = Harness()
    h.invoke(*h.upload_dimensions())
    key = f"{keys.packet_prefix('sales_order', 1)}ingested_20241114T153409.845000Z.jsonl.gz"
    h.ingestion.put(key, body)
    with pytest.raises(UnreadableObjectError, match=says):
        h.invoke("sales_order:1")
    assert h.consumed("sales_order") == 0


def test_a_valid_gzip_of_nothing_and_a_0_byte_jsonl_are_empty_objects():
    packet = parse_objects(SALES, [("a.jsonl.gz", gzip.compress(b"")), ("b.jsonl", b"")])
    assert (packet.rows.num_rows, packet.lines, packet.failures) == (0, 0, ())


# -- line numbers: CRLF, BOM, blank lines, objects ----------------------------------------


@pytest.mark.parametrize("block_bytes", [1, 97, 1 << 20])
def test_line_numbers_are_per_object_whatever_crlf_bom_and_blank_lines_surround_them(block_bytes):
    good = json.dumps(sales_order(1)).encode()
    a = b"\xef\xbb\xbf" + good + b"\r\n\r\n  \t\r\n" + b"oops\r\n" + good + b"\r\n"
    b = good + b"\n" + b"\xef\xbb\xbf" + good + b"\n" + good + b"\r" + good + b"\n" + b"[1]"
    packet = parse_objects(SALES, [("a.jsonl", a), ("b.jsonl", b)], block_bytes)
    assert packet.rows.num_rows == 3
    broken = sorted(int(n) for f in packet.failures if f.column == "*" for n in f.lines)
    where = [(line.key, line.number, bytes(line)) for line in packet.text.lines(broken)]
    assert where == [
        ("a.jsonl", 4, b"oops"),
        ("b.jsonl", 2, b"\xef\xbb\xbf" + good),
        ("b.jsonl", 3, good + b"\r" + good),
        ("b.jsonl", 4, b"[1]"),
    ]
    assert (packet.lines, packet.blank) == (9, 2)


def test_nan_outside_a_string_rejects_even_a_row_whose_declared_fields_are_fine():
    fine = json.dumps(sales_order(1))[:-1]
    lines = [
        fine + ', "x": NaN}',
        fine.replace(": 1,", ": 2,", 1) + ', "x": "NaN and Infinity \\" NaN"}',  # inside strings: fine
        fine.replace(": 1,", ": 3,", 1) + ', "x": [1, -Infinity]}',
    ]
    packet = parse_objects(SALES, [("k.jsonl", encode_lines(lines))])
    assert packet.rows["sales_order_id"].to_pylist() == [2]
    [failure] = packet.failures
    assert failure.lines.tolist() == [0, 2]
    assert set(failure.row_reasons) == {"not strict JSON: NaN or Infinity"}


def test_the_limits_in_the_code_are_the_ones_readme_and_runbook_state():
    from runtime.reading import MAX_OBJECT_BYTES

    readme, runbook = (ROOT / "README.md").read_text(), (ROOT / "docs" / "operations.md").read_text()
    assert (MAX_LINE_BYTES, MAX_OBJECT_BYTES, MAX_DEPTH, QUARANTINE_RAW_BYTES) == (2**20, 4 * 2**30, 64, 64 * 2**10)
    for stated in ("1 MiB", "4 GiB", "64 levels", "64 KiB"):
        assert stated in readme and stated in runbook, stated
    assert "8 MiB" not in readme + runbook


@pytest.mark.parametrize("key, compress", [("big.jsonl", lambda b: b), ("big.jsonl.gz", gzip.compress)])
def test_an_object_over_the_size_cap_is_unreadable_gzip_bomb_or_not(monkeypatch, key, compress):
    from runtime import framing

    monkeypatch.setattr(framing, "MAX_OBJECT_BYTES", 10_000)
    body = compress(encode_lines([sales_order(i) for i in range(1, 100)]))  # about 35 KB of text
    with pytest.raises(UnreadableObjectError, match="object size cap"):
        parse_objects(SALES, [(key, body)])


def test_a_line_without_exactly_one_fate_is_a_typed_error_not_a_silent_loss(monkeypatch):
    from runtime import reading
    from runtime.errors import LineAccountingError
    from runtime.screen import Screened
    from runtime.validation import TableReport

    with pytest.raises(LineAccountingError, match="5 lines but 3 written"):
        TableReport("fact_sales_order", "sales_order:1", 4, 3, 1, 0, lines=5, blank=0)
    screen = reading.screen

    def losing_a_line(block):  # a screen that forgets one line's fate
        found = screen(block)
        return Screened(found.candidates[1:], found.blank, found.rejected, False)

    monkeypatch.setattr(reading, "screen", losing_a_line)
    with pytest.raises(LineAccountingError, match="k.jsonl from line 1: 3 lines but 2 rows"):
        parse_objects(SALES, [("k.jsonl", encode_lines([sales_order(1), sales_order(2), sales_order(3)]))])
