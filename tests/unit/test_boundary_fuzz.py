"""Fuzzing the input boundary (docs/design.md#line-screen): real fixture rows interleaved with hostile
lines, split into objects (some gzipped) and read in blocks of random sizes.

Whatever comes, the reading path must give: no crash and no untyped error; every line
exactly one fate (lines = rows + rejected + blank, per object and per packet); every
valid row read exactly once, at its line; every other non-blank line quarantined as
strict JSON under its object and its true 1-based line number, with its exact text.

`make test` runs a bounded number of examples; tests/reliability/test_boundary_fuzz.py
runs the same property much longer (`make reliability`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.reading import MAX_LINE_BYTES, parse_objects
from runtime.tables import SOURCES
from runtime.validation import MAX_DEPTH, QUARANTINE_RAW_BYTES, quarantine_jsonl

SALES = SOURCES["sales_order"]
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "totesys" / "sales_order.jsonl"
VALID = FIXTURE.read_text().splitlines()[:400]
BOM = "\ufeff"
HUGE = VALID[0][:-1] + ', "padding": "' + "x" * (MAX_LINE_BYTES + 100) + '"}'

valid_rows = st.sampled_from(VALID)


def _crs_between_tokens(parts: tuple[str, list[bool], str, str]) -> str:
    """A valid row with CRs (JSON whitespace) between some of its tokens and around it."""
    row, where, before, after = parts
    pieces = row.split(", ")  # sales orders hold no free text: every ", " is between tokens
    joined = pieces[0] + "".join(("," + ("\r" if cr else " ") + piece) for cr, piece in zip(where, pieces[1:]))
    return before + joined.replace('": ', '"\r:\r', 1 if where[-1] else 0) + after


# The fixture's first row padded to exactly the line limit (the limit counts no line end).
AT_LIMIT = VALID[0][:-1] + ', "padding": "' + "x" * (MAX_LINE_BYTES - len(VALID[0]) - 15) + '"}'
assert len(AT_LIMIT.encode()) == MAX_LINE_BYTES
valid_with_crs = st.tuples(
    valid_rows, st.lists(st.booleans(), min_size=12, max_size=12),
    st.sampled_from(["", "\r", " \r", "\r\t"]), st.sampled_from(["", "\r", "\r ", " \r"]),
).map(_crs_between_tokens)
hostile_lines = st.one_of(
    st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from([
        "null", "  null ", "null {}", "[1, 2]", "[{}]", "3", "-0.5e3", '"text"', "true", "NaN", "-Infinity",
        "{}", "{broken", '{"sales_order_id": "two"}', "}{", "{}}", '{"a": "unterminated}',
    ]),
    st.integers(1, 3000).map(lambda d: "[" * d + "]" * d),
    st.tuples(valid_rows, st.integers(MAX_DEPTH, 2000)).map(  # nested 1 + d deep
        lambda vd: vd[0][:-1] + ', "deep": ' + '{"x": ' * vd[1] + "1" + "}" * vd[1] + "}"
    ),
    st.tuples(valid_rows, valid_rows, st.sampled_from(["", " ", "\r", "\t"])).map(lambda v: v[0] + v[2] + v[1]),
    valid_rows.map(lambda v: v + " null"),
    valid_rows.map(lambda v: v[:-1] + ', "staff_id": 5}'),  # a duplicate key
    st.tuples(valid_rows, st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])).map(
        lambda v: v[0][:-1] + f', "x": {v[1]}}}'
    ),
    valid_rows.map(lambda v: v.replace('"units_sold": ', '"units_sold": "', 1)),  # a broken string
    valid_rows.map(lambda v: v.replace('"created_at": "', '"created_at": "\r', 1)),  # a raw CR in a string
    st.tuples(valid_with_crs, valid_with_crs).map("\r".join),  # two rows parted by a lone CR: one line
)
blank_lines = st.sampled_from(["", " ", "\t", "  \t ", "\r", " \r", "\r \r", "\r\r", " \r\t", "\t\r \r"])
lines = st.lists(
    st.one_of(
        st.tuples(st.just("valid"), st.tuples(valid_rows, st.sampled_from(["", "  ", "\r", " \t\r"])).map("".join)),
        st.tuples(st.just("valid"), valid_with_crs),
        st.tuples(st.just("valid-after-bom"), valid_rows.map(lambda v: BOM + v)),
        st.tuples(st.just("hostile"), hostile_lines),
        st.tuples(st.just("hostile"), blank_lines),
    ),
    max_size=50,
)
packets = st.fixed_dictionaries({
    "lines": lines,
    "huge_at": st.one_of(st.none(), st.integers(0, 50)),
    "at_limit": st.one_of(st.none(), st.tuples(st.integers(0, 50), st.sampled_from(["", "\r"]))),
    "cuts": st.lists(st.integers(0, 50), max_size=4),
    "gzipped": st.lists(st.booleans(), min_size=5, max_size=5),
    "final_newline": st.lists(st.booleans(), min_size=5, max_size=5),
    "block_bytes": st.sampled_from([1, 2, 16, 100, 333, 4096, 65536, 1 << 22]),
})


def check_every_line_has_one_fate(packet: dict) -> None:
    items = list(packet["lines"])
    block_bytes = packet["block_bytes"]
    if packet["huge_at"] is not None:
        items.insert(min(packet["huge_at"], len(items)), ("hostile", HUGE))
        block_bytes = max(block_bytes, 4096)  # a 1 MiB line read byte by byte takes minutes
    if packet["at_limit"] is not None:  # a row, with LF or CRLF
        at, end = packet["at_limit"]
        items.insert(min(at, len(items)), ("valid", AT_LIMIT + end))
        block_bytes = max(block_bytes, 4096)
    bounds = sorted({0, len(items), *(min(c, len(items)) for c in packet["cuts"])})
    objects, expected = [], []  # expected: (fate, key, 1-based line, exact text, valid row)
    for n, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        key = f"sales_order/part_{n}.jsonl" + (".gz" if packet["gzipped"][n % 5] else "")
        body = "".join(text + "\n" for _, text in items[lo:hi])
        if not packet["final_newline"][n % 5] and hi > lo and items[hi - 1][1]:
            body = body[:-1]  # the reader puts the last line end back
        raw = body.encode()
        objects.append((key, gzip.compress(raw, mtime=0) if key.endswith(".gz") else raw))
        for number, (kind, text) in enumerate(items[lo:hi], start=1):
            if number == 1 and text.startswith(BOM):
                text, kind = text[1:], "valid" if kind == "valid-after-bom" else kind  # a BOM opens the text
            exact = text[:-1] if text.endswith("\r") else text  # CRLF is a line end
            if kind == "valid":
                fate = "row"
            elif not text.strip(" \t\r"):
                fate = "blank"
            else:
                fate = "rejected"
            expected.append((fate, key, number, exact))

    parsed = parse_objects(SALES, objects, block_bytes)  # any exception fails the property

    assert parsed.lines == len(expected)
    assert parsed.blank == sum(1 for e in expected if e[0] == "blank")
    rows_at = [i for i, e in enumerate(expected) if e[0] == "row"]
    rejected_at = [i for i, e in enumerate(expected) if e[0] == "rejected"]
    # Every valid row exactly once, at its own line, with its own values.
    table = parsed.rows.sort_by("__line")
    assert table["__line"].to_pylist() == rows_at
    assert table["sales_order_id"].to_pylist() == [json.loads(expected[i][3])["sales_order_id"] for i in rows_at]
    # Every other non-blank line rejected, once.
    failed = sorted({int(n) for f in parsed.failures for n in f.lines})
    assert failed == rejected_at
    assert len(rows_at) + len(failed) + parsed.blank == parsed.lines
    # Per object too.
    for key, _ in objects:
        mine = [e for e in expected if e[1] == key]
        assert len(mine) == sum(1 for e in mine if e[0] in ("row", "rejected", "blank"))

    # The quarantine: strict JSON, the true line, the exact text.
    quarantine = quarantine_jsonl(parsed.text.lines, list(parsed.failures))
    kept = [json.loads(line, parse_constant=_refuse) for line in quarantine.splitlines()]
    assert [(q["_object"], q["_line"]) for q in kept] == [expected[i][1:3] for i in rejected_at]
    for q, i in zip(kept, rejected_at):
        exact = expected[i][3]
        assert q["_reasons"]
        if "_raw" in q:
            if "_length" in q:
                assert q["_length"] == len(exact.encode()) and exact.startswith(q["_raw"])
                assert len(q["_raw"].encode()) <= QUARANTINE_RAW_BYTES
            else:
                assert q["_raw"] == exact
        else:
            fields = {k: v for k, v in q.items() if not k.startswith("_")}
            assert fields == json.loads(exact)


def _refuse(constant):
    raise AssertionError(f"{constant} in a quarantine line")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(packets)
def test_every_line_has_one_fate_whatever_the_bytes(packet):
    check_every_line_has_one_fate(packet)


class _Shared:
    """One pipeline over in-memory ports whose dimensions are in; each example is its
    next sales_order packet (building the dimensions per example would cost seconds)."""

    harness = None
    packet = 0
    order = 0


pipeline_lines = st.lists(
    st.one_of(
        # A valid row; with CRs (JSON whitespace) between its tokens and before its CRLF when given.
        st.tuples(st.just("valid"), st.sampled_from([None, ",\r", ", \r"])),
        st.tuples(st.just("hostile"), st.one_of(hostile_lines, blank_lines)),
    ),
    max_size=30,
)


pipeline_packets = st.fixed_dictionaries(
    {"items": pipeline_lines, "cuts": st.lists(st.integers(0, 30), max_size=3), "gzipped": st.booleans()}
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pipeline_packets)
def test_through_the_pipeline_every_valid_row_is_written_once_and_every_other_line_quarantined(packet):
    check_through_the_pipeline(**packet)


def check_through_the_pipeline(items, cuts, gzipped) -> None:
    from runtime import keys
    from tests.support.harness import Harness, sales_order

    if _Shared.harness is None:
        _Shared.harness = Harness()
        _Shared.harness.invoke(*_Shared.harness.upload_dimensions())
    h = _Shared.harness
    _Shared.packet += 1
    k = _Shared.packet
    texts, valid_ids = [], []
    for kind, text in items:
        if kind == "valid":
            _Shared.order += 1
            valid_ids.append(_Shared.order)
            separator, text = text, json.dumps(sales_order(_Shared.order))
            if separator:
                text = text.replace(", ", separator) + "\r\r"
        texts.append(text)
    bounds = sorted({0, len(texts), *(min(c, len(texts)) for c in cuts)}) if texts else [0, 0]
    expected_quarantine = []
    for n, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        key = f"{keys.packet_prefix('sales_order', k)}ingested_20241114T153409.845000Z_{n}.jsonl"
        body = "".join(t + "\n" for t in texts[lo:hi]).encode()
        if gzipped:
            key, body = key + ".gz", gzip.compress(body, mtime=0)
        h.ingestion.put(key, body)
        for number, (kind, text) in enumerate(items[lo:hi], start=1):
            if kind == "hostile" and (text.lstrip(BOM) if number == 1 else text).strip(" \t\r"):
                expected_quarantine.append((key, number))
    before = h.fact_versions()
    summary = h.invoke(f"sales_order:{k}")
    written = h.fact_versions() - before
    assert sorted(i for i, _, _ in written.elements()) == valid_ids  # each exactly once
    data = h.processed.read(keys.quarantine_key("fact_sales_order", "sales_order", k)) or b""
    kept = [json.loads(line, parse_constant=_refuse) for line in data.splitlines()]
    assert [(q["_object"], q["_line"]) for q in kept] == expected_quarantine
    [report] = [r for o in summary.outcomes for r in o.reports if r.table == "fact_sales_order"]
    assert report.lines == len(texts)
    assert report.lines == report.rows_written + report.rows_rejected + report.rows_skipped + report.blank
