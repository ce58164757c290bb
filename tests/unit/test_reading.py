import gzip
from datetime import date, datetime
from decimal import Decimal

import pytest

from runtime.errors import UnreadableObjectError
from runtime.reading import MAX_LINE_BYTES, parse_objects
from runtime.tables import SOURCES
from tests.support.harness import encode_lines, sales_order, staff

SALES = SOURCES["sales_order"]


def parse(rows, source=SALES):
    return parse_objects(source, [("k.jsonl", encode_lines(rows))])


def test_timestamps_with_and_without_fraction_and_with_space_or_t_separator():
    packet = parse([
        sales_order(1, created_at="2022-11-03T14:20:52.186000", updated="2022-11-03T14:20:52.186000"),
        sales_order(2, created_at="2024-05-01T09:26:10", updated="2024-05-01 09:26:10"),
        sales_order(3, created_at="2024-05-01 09:26:10.5", updated="2024-05-01T09:26:10.000001"),
    ])
    assert packet.failures == ()
    assert packet.rows["created_at"].to_pylist() == [
        datetime(2022, 11, 3, 14, 20, 52, 186000), datetime(2024, 5, 1, 9, 26, 10), datetime(2024, 5, 1, 9, 26, 10, 500000)
    ]
    assert packet.rows["last_updated"].to_pylist()[1:] == [datetime(2024, 5, 1, 9, 26, 10), datetime(2024, 5, 1, 9, 26, 10, 1)]


def test_unit_price_as_number_or_decimal_string_is_exact():
    packet = parse([sales_order(1, unit_price=3.94), sales_order(2, unit_price="3.94"), sales_order(3, unit_price=12)])
    assert packet.rows["unit_price"].to_pylist() == [Decimal("3.94"), Decimal("3.94"), Decimal("12.00")]
    assert str(packet.rows.schema.field("unit_price").type) == "decimal128(10, 2)"


def test_dates_and_ints_take_their_ddl_types():
    packet = parse([sales_order(1)])
    assert packet.rows["agreed_delivery_date"].to_pylist() == [date(2022, 11, 7)]
    assert str(packet.rows.schema.field("units_sold").type) == "int32"


@pytest.mark.parametrize(
    "override, column, check",
    [
        ({"unit_price": 3.945}, "unit_price", "numeric(10,2)"),
        ({"unit_price": "123456789.00"}, "unit_price", "numeric(10,2)"),
        ({"units_sold": 2**31}, "units_sold", "fits a 32-bit int"),
        ({"agreed_delivery_date": "2022-02-30"}, "agreed_delivery_date", "an ISO date"),
        ({"agreed_delivery_date": "07/11/2022"}, "agreed_delivery_date", "an ISO date"),
        ({"last_updated": None}, "last_updated", "not null"),
        ({"sales_order_id": None}, "sales_order_id", "not null"),
    ],
)
def test_a_value_that_does_not_fit_its_type_fails_that_row_only(override, column, check):
    row = sales_order(2)
    row.update(override)
    packet = parse([sales_order(1), row, sales_order(3)])
    assert packet.rows["sales_order_id"].to_pylist() == [1, 3]
    [failure] = packet.failures
    assert (failure.column, failure.lines.tolist()) == (column, [1])
    assert check in failure.check


@pytest.mark.parametrize(
    "line",
    [
        '{"sales_order_id": 2, "created_at": ',  # truncated
        "not json at all",
        '{"sales_order_id": "two"}',  # a string where an int belongs
        '{"sales_order_id": 2, "last_updated": "yesterday"}',  # not a timestamp
        "[1, 2, 3]",
        '{"sales_order_id": 2}{"sales_order_id": 3}',  # two values on one line
    ],
)
def test_a_broken_line_is_set_aside_with_its_reason_and_the_rest_is_read(line):
    rows = [sales_order(i) for i in range(1, 50)]
    rows.insert(20, line)
    packet = parse(rows)
    assert packet.rows.num_rows == 49
    [failure] = packet.failures
    assert failure.lines.tolist() == [20]
    assert failure.row_reasons[0]
    assert packet.text.line(20).decode() == line


def test_several_broken_lines_are_each_found():
    rows = [sales_order(i) for i in range(1, 200)]
    for at in (0, 57, 58, 198):
        rows.insert(at, "oops")
    packet = parse(rows)
    assert packet.rows.num_rows == 199
    assert packet.failures[0].lines.tolist() == [0, 57, 58, 198]


def test_a_missing_column_rejects_the_row_and_unknown_columns_are_ignored():
    row = staff()
    del row["email_address"]
    row["nickname"] = "JJ"
    packet = parse([row, staff(2)], SOURCES["staff"])
    [failure] = packet.failures
    assert (failure.column, failure.lines.tolist()) == ("email_address", [0])
    assert packet.rows["staff_id"].to_pylist() == [2]
    assert packet.unknown_columns == {"nickname"}


def test_blank_lines_are_skipped_and_line_numbers_still_point_at_the_source():
    body = encode_lines([sales_order(1)]) + b"\n   \n" + encode_lines(["broken"])
    packet = parse_objects(SALES, [("k.jsonl", body)])
    assert packet.rows.num_rows == 1
    assert packet.text.line(int(packet.failures[0].lines[0])) == b"broken"


def test_objects_are_read_in_the_order_given_and_an_object_without_final_newline_is_fine():
    first = encode_lines([sales_order(1)]).rstrip(b"\n")
    packet = parse_objects(SALES, [("a.jsonl", first), ("b.jsonl", encode_lines([sales_order(2)]))])
    assert packet.rows["sales_order_id"].to_pylist() == [1, 2]


def test_gzip_objects_are_decoded():
    body = encode_lines([sales_order(1), sales_order(2)])
    packet = parse_objects(SALES, [("x.jsonl.gz", gzip.compress(body))])
    assert packet.rows["sales_order_id"].to_pylist() == [1, 2]


@pytest.mark.parametrize(
    "key, body, says",
    [
        ("x.jsonl.gz", gzip.compress(b'{"a": 1}\n' * 100, mtime=0)[:-20], "not a valid gzip"),
        ("x.jsonl.gz", b"plain text, not gzip", "not a valid gzip"),
        ("x.jsonl", b'{"a": "\xff\xfe"}\n', "not UTF-8"),
        ("x.jsonl", bytes(range(256)), "not UTF-8"),
    ],
)
def test_an_unreadable_object_is_a_typed_error_naming_it(key, body, says):
    with pytest.raises(UnreadableObjectError) as error:
        parse_objects(SALES, [(key, body)])
    assert key in str(error.value) and says in str(error.value)


@pytest.mark.parametrize("block_bytes", [1 << 30, 4096])
def test_a_line_over_the_limit_is_a_rejected_row_and_the_rest_is_read(block_bytes):
    huge = b'{"sales_order_id": 1, "x": "' + b"a" * MAX_LINE_BYTES + b'"}'
    body = encode_lines([sales_order(1), huge, sales_order(2)])
    packet = parse_objects(SALES, [("ok.jsonl", encode_lines([sales_order(3)])), ("big.jsonl", body)], block_bytes)
    assert packet.rows["sales_order_id"].to_pylist() == [3, 1, 2]
    [failure] = packet.failures
    assert failure.lines.tolist() == [2]
    assert "longer than the 1,048,576-byte line limit" in failure.row_reasons[0]
    line = packet.text.line(2)
    assert (line.key, line.number, line.length) == ("big.jsonl", 2, len(huge))


def test_an_empty_object_gives_no_rows():
    packet = parse_objects(SALES, [("k.jsonl", b"")])
    assert packet.rows.num_rows == 0 and packet.failures == ()
