"""Invariants over generated inputs (hypothesis)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import state
from runtime.reading import parse_objects
from runtime.tables import SOURCES
from tests.support.harness import encode_lines, staff

STAFF = SOURCES["staff"]
T0 = datetime(2022, 11, 3, 14, 20, 49)

versions = st.lists(
    st.tuples(st.integers(1, 6), st.integers(0, 5), st.sampled_from(["Ann", "Bo", "Cy"])),
    max_size=25,
)


def rows_of(items):
    return [staff(i, 1, first=name, updated=(T0 + timedelta(days=d)).isoformat()) for i, d, name in items]


def parse(rows):
    return parse_objects(STAFF, [("k.jsonl", encode_lines(rows))]).rows


@settings(max_examples=60, deadline=None)
@given(first=versions, second=versions)
def test_state_holds_the_latest_version_per_key_incoming_winning_ties(first, second):
    s1, _ = state.upsert(state.empty(STAFF), parse(rows_of(first)), "staff_id")
    s2, changed = state.upsert(s1, parse(rows_of(second)), "staff_id")

    expected = {}
    for i, d, name in first + second:  # later lines win ties, the second packet wins over the first
        if i not in expected or d >= expected[i][0]:
            expected[i] = (d, name)
    got = {r["staff_id"]: ((r["last_updated"] - T0).days, r["first_name"]) for r in s2.to_pylist()}
    assert got == expected
    # Emitted: exactly the keys whose winning row came in the second packet.
    from_second = {i for i in expected if any(j == i and d == expected[i][0] for j, d, _ in second)}
    assert set(changed["staff_id"].to_pylist()) == from_second


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.just("good"), st.text(max_size=30)), max_size=40))
def test_every_line_is_either_a_row_or_a_failure_never_both_never_neither(kinds):
    rows = [staff(i + 1) if kind == "good" else kind for i, kind in enumerate(kinds)]
    body = encode_lines(rows)
    packet = parse_objects(STAFF, [("k.jsonl", body)])
    parsed_lines = set(packet.rows["__line"].to_pylist())
    failed_lines = {int(i) for f in packet.failures for i in f.lines}
    assert not parsed_lines & failed_lines
    assert parsed_lines | failed_lines == set(range(packet.text.line_count)) - _blank(packet)


def _blank(packet):
    # JSON whitespace only: pyarrow reads such a line as no row at all.
    return {i for i in range(packet.text.line_count) if not packet.text.line(i).strip(b" \t\r")}
