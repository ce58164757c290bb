"""Values a warehouse cannot hold are rejected, each with its reason; the rest is written."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.reading import WRITTEN_TOLERANCE, parse_objects
from runtime.tables import SOURCES
from runtime.validation import NOT_BLANK, NO_NUL
from tests.support.harness import Harness, design, encode_lines, sales_order, staff
from tests.unit.test_star import report, run

SALES = SOURCES["sales_order"]


def parse(rows, source=SALES, written_at=None):
    packet = parse_objects(source, [("k.jsonl", encode_lines(rows))])
    if written_at is None:
        return packet
    return packet, coerce_again(source, rows, written_at)


def coerce_again(source, rows, written_at):
    """The rows through coerce with an object's LastModified."""
    from runtime.reading import Block, parse_block

    body = encode_lines(rows)
    block = Block("k.jsonl", pa.py_buffer(body), 0, body.count(b"\n"))
    return parse_block(source, block, written_at)


# -- text ---------------------------------------------------------------------------


def test_text_with_u0000_is_rejected_and_the_rest_is_written():
    result = run("design", [design(1, name="Wood\u0000en"), design(2, name="Steel")])
    r = report(result, "dim_design")
    assert (r.rows_written, r.rows_rejected) == (1, 1)
    # (the helper names the file after the design, so file_name holds one too)
    assert {(f.column, f.check) for f in r.failures} == {("design_name", NO_NUL.error), ("file_name", NO_NUL.error)}
    assert '"_reasons": ["design_name: no U+0000' in result.quarantine["dim_design"].decode()


@pytest.mark.parametrize("blank", ["", " ", "\t\r\n", "\u00a0", "\u3000 ", "\u2028"])
def test_not_null_text_that_is_empty_or_whitespace_is_rejected(blank):
    result = run("staff", [staff(1, first=blank, email="a@b.c"), staff(2)], _states_for_staff())
    r = report(result, "dim_staff")
    assert (r.rows_written, r.rows_rejected) == (1, 1)
    assert [(f.column, f.check) for f in r.failures] == [("first_name", NOT_BLANK.error)]


def test_a_nullable_text_may_be_null_but_not_hold_u0000():
    from tests.support.harness import address

    result = run("address", [address(1, line_2=None), address(2, line_2="a\u0000b"), address(3, line_2=" ")])
    r = report(result, "dim_location")
    assert (r.rows_written, r.rows_rejected) == (2, 1)
    assert [f.column for f in r.failures] == ["address_line_2"]


@settings(deadline=None)  # the first call imports pandas' string machinery
@given(st.text(max_size=6))
def test_blank_means_what_python_calls_whitespace(text):
    import pandas as pd

    series = pd.Series([text], dtype=pd.ArrowDtype(pa.string()))
    assert bool(NOT_BLANK(series).check_output.iloc[0]) == (text.strip() != "")


def _states_for_staff():
    from tests.support.harness import department
    from tests.unit.test_star import states_with

    return states_with(department=[department()])


# -- numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, column",
    [
        ({"units_sold": 2.5}, "units_sold"),  # not a whole number
        ({"units_sold": 2**31}, "units_sold"),  # past int32
        ({"staff_id": -(2**31) - 1}, "staff_id"),
        ({"design_id": 1e300}, "design_id"),
        ({"unit_price": 100_000_000}, "unit_price"),  # past numeric(10,2)
        ({"unit_price": 1.005}, "unit_price"),
        ({"unit_price": "-0.001"}, "unit_price"),
    ],
)
def test_a_number_outside_its_column_type_is_rejected(override, column):
    packet = parse([sales_order(1), sales_order(2, **override), sales_order(3)])
    assert packet.rows["sales_order_id"].to_pylist() == [1, 3]
    [failure] = packet.failures
    assert (failure.column, failure.lines.tolist()) == (column, [1])


def test_integral_floats_are_ints():
    packet = parse([sales_order(2.0, staff_id=19.0, units_sold=-0.0)])
    assert packet.failures == ()
    assert packet.rows.select(["sales_order_id", "staff_id", "units_sold"]).to_pylist() == [
        {"sales_order_id": 2, "staff_id": 19, "units_sold": 0}
    ]


def test_an_exponent_too_large_for_the_decimal_is_refused_not_wrapped():
    # decimal128(38, 18) reads 1e30 as 18960114910927365649.47...: garbage, not an error.
    packet = parse([sales_order(1, unit_price=1e30), sales_order(2, unit_price="1e2")])
    assert packet.rows["unit_price"].to_pylist() == [Decimal("100.00")]
    assert [f.lines.tolist() for f in packet.failures] == [[0]]


# -- timestamps -----------------------------------------------------------------------


def test_offsets_are_read_as_utc():
    packet = parse([sales_order(1, updated="2022-11-03T15:20:52+01:00", created_at="2022-11-03T14:20:52Z")])
    assert packet.rows["last_updated"].to_pylist() == [datetime(2022, 11, 3, 14, 20, 52)]
    assert packet.rows["created_at"].to_pylist() == [datetime(2022, 11, 3, 14, 20, 52)]


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "0000-06-01T00:00:00", "10000-01-01T00:00:00"]
)
def test_a_timestamp_outside_years_1_to_9999_is_rejected(stamp):
    packet = parse([sales_order(1), sales_order(2, created_at=stamp)])
    assert packet.rows["sales_order_id"].to_pylist() == [1]
    assert [f.lines.tolist() for f in packet.failures] == [[1]]


@pytest.mark.parametrize("day", ["0000-01-01", "10000-01-01"])
def test_a_date_outside_years_1_to_9999_is_rejected(day):
    packet = parse([sales_order(1), sales_order(2, agreed_payment_date=day)])
    assert packet.rows["sales_order_id"].to_pylist() == [1]


def test_a_row_stamped_after_its_object_was_written_is_rejected_but_planned_dates_may_be_future():
    written = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
    just_inside = (written + WRITTEN_TOLERANCE).replace(tzinfo=None).isoformat()
    rows = [
        sales_order(1, agreed_payment_date="2099-01-01", agreed_delivery_date="2099-01-02"),
        sales_order(2, updated="9999-12-31T23:59:59"),
        sales_order(3, created_at="2024-01-01T12:06:00"),
        sales_order(4, updated=just_inside),
    ]
    _, packet = parse(rows, written_at=written)
    assert packet.rows["sales_order_id"].to_pylist() == [1, 4]
    assert sorted((f.column, f.lines.tolist()) for f in packet.failures) == [("created_at", [2]), ("last_updated", [1])]
    assert all("LastModified" in f.check for f in packet.failures)


def test_a_dimension_row_stamped_9999_does_not_win_and_a_later_correction_is_written():
    h = Harness()
    h.upload_dimensions(1, design=[design(1, name="Wooden")])
    h.invoke("currency:1", "design:1", "address:1", "department:1", "counterparty:1", "staff:1")
    h.upload("design", 2, [design(1, name="Hijacked", updated="9999-12-31T23:59:59.999999")])
    h.invoke("design:2")
    [rejected] = h.quarantine("dim_design", "design:2")
    assert any("LastModified" in reason for reason in rejected["_reasons"])
    h.upload("design", 3, [design(1, name="Corrected", updated="2024-05-01T09:00:00")])
    h.invoke("design:3")
    assert [r["design_name"] for r in h.rows("dim_design")] == ["Wooden", "Corrected"]
    h.check_invariants()


def test_lastmodified_comes_from_the_object_not_the_clock():
    h = Harness()
    h.upload_dimensions(1)
    h.invoke("currency:1", "design:1", "address:1", "department:1", "counterparty:1", "staff:1")
    key = h.upload("design", 2, [design(1, name="Early", updated="2023-01-01T00:00:00")])
    h.ingestion.modified[key] = datetime(2022, 12, 31, tzinfo=timezone.utc)  # written before the row's stamp
    h.invoke("design:2")
    assert len(h.quarantine("dim_design", "design:2")) == 1
    assert [r["design_name"] for r in h.rows("dim_design")] == ["Wooden"]


# -- schema drift ---------------------------------------------------------------------


def _drift_logs(caplog):
    import json

    return [json.loads(r.message) if r.message.startswith("{") else r for r in caplog.records
            if "schema drift" in r.getMessage()]


def _dimensions_and(h, table, rows):
    h.upload_dimensions(1)
    h.invoke("currency:1", "design:1", "address:1", "department:1", "counterparty:1", "staff:1")
    h.upload(table, 1 if table == "sales_order" else 2, rows)
    h.invoke(f"{table}:{1 if table == 'sales_order' else 2}")


def _drift_metric(h, table):
    return sum(doc.get("SchemaDrift", 0) for doc in h.metrics() if doc["table"] == table)


def test_an_unknown_column_is_ignored_for_the_output_but_reported_once_per_packet(caplog):
    from runtime.observability import logger

    h = Harness()
    rows = [sales_order(i, discount=i % 2 and "ten" or 10, channel={"web": True}) for i in range(1, 5)]
    with caplog.at_level("WARNING", logger=logger.name):
        _dimensions_and(h, "sales_order", rows)
    assert len(h.rows("fact_sales_order")) == 4  # no row broken by them
    [warning] = [r for r in caplog.records if "schema drift" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert (warning.table, warning.unknown_columns) == ("sales_order", ["channel", "discount"])
    assert _drift_metric(h, "sales_order") == 1


def test_a_missing_or_retyped_declared_column_rejects_those_rows_and_is_reported(caplog):
    from runtime.observability import logger

    h = Harness()
    missing = sales_order(2)
    del missing["agreed_delivery_date"]
    retyped = sales_order(3, staff_id="nineteen")
    with caplog.at_level("WARNING", logger=logger.name):
        _dimensions_and(h, "sales_order", [sales_order(1), missing, retyped, sales_order(4)])
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 4]
    rejected = {r.get("sales_order_id", r.get("_raw")): r["_reasons"] for r in h.quarantine("fact_sales_order", "sales_order:1")}
    assert any("agreed_delivery_date" in reason and "missing" in reason for reason in rejected[2])
    [warning] = [r for r in caplog.records if "schema drift" in r.getMessage()]
    assert warning.missing_columns == {"agreed_delivery_date": 1}
    assert warning.retyped_columns == {"staff_id": 1}
    assert _drift_metric(h, "sales_order") == 1


def test_a_null_is_not_a_missing_column():
    from tests.support.harness import address

    packet = parse([address(1, line_2=None), {**address(2), "address_line_2": None}], SOURCES["address"])
    assert packet.failures == () and packet.rows.num_rows == 2


def test_no_drift_no_warning(caplog):
    from runtime.observability import logger

    h = Harness()
    with caplog.at_level("WARNING", logger=logger.name):
        _dimensions_and(h, "sales_order", [sales_order(1)])
    assert not [r for r in caplog.records if "schema drift" in r.getMessage()]
    assert _drift_metric(h, "sales_order") == 0


def test_a_source_column_called_like_our_bookkeeping_is_only_an_unknown_column():
    packet = parse([{**sales_order(1), "__line": 99}])
    assert packet.failures == () and packet.rows["__line"].to_pylist() == [0]
    assert packet.unknown_columns == {"__line (a source column)"}


# -- properties over the number space -----------------------------------------------


@settings(deadline=None, max_examples=200)
@given(st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.floats(allow_nan=False, allow_infinity=False)))
def test_an_int_column_takes_exactly_the_whole_numbers_of_int32(value):
    import json

    line = json.dumps(sales_order(1)).replace('"units_sold": 42972', f'"units_sold": {json.dumps(value)}')
    packet = parse([line])
    fits = float(value).is_integer() and -(2**31) <= value <= 2**31 - 1
    if fits:
        assert packet.rows["units_sold"].to_pylist() == [int(value)]
    else:
        assert packet.rows.num_rows == 0 and len(packet.failures) == 1


@settings(deadline=None, max_examples=200)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=4),
    st.booleans(),
)
def test_a_decimal_column_takes_exactly_numeric_10_2(value, as_string):
    import json

    text = json.dumps(str(value)) if as_string else str(value)
    line = json.dumps(sales_order(1)).replace('"unit_price": 3.94', f'"unit_price": {text}')
    packet = parse([line])
    fits = value == value.quantize(Decimal("0.01")) and abs(value) < Decimal("1e8")
    if fits:
        assert packet.rows["unit_price"].to_pylist() == [value.quantize(Decimal("0.01"))]
    else:
        assert packet.rows.num_rows == 0 and len(packet.failures) == 1


@settings(deadline=None, max_examples=200)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    st.sampled_from(["", "Z", "+00:00", "+01:00", "-01:00", "+05:30", "-12:00", "+14:00"]),
)
def test_a_timestamp_is_read_in_utc_and_kept_only_inside_years_1_to_9999(local, offset):
    stamp = local.isoformat(timespec="microseconds") + offset
    packet = parse([sales_order(1, created_at=stamp)])
    shift = timedelta() if offset in ("", "Z") else datetime.strptime(offset, "%z").utcoffset()
    try:
        utc = local - shift
    except OverflowError:
        utc = None
    if utc is not None:
        assert packet.rows["created_at"].to_pylist() == [utc]
    else:
        assert packet.rows.num_rows == 0 and [f.column for f in packet.failures] == ["created_at"]
