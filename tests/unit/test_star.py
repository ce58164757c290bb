"""Each output table from small literal inputs: exact rows, exact types, the real quirks."""

import json
from types import SimpleNamespace
from datetime import date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from runtime import state as st
from runtime.parquet import from_parquet
from runtime.reading import parse_objects
from runtime.columns import OUTPUT_COLUMNS
from runtime.star import ARROW_SCHEMAS, SCHEMAS
from runtime.star.schema import arrow_type, table_schema
from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES, SOURCES
from runtime.transform import transform
from tests.support.harness import (
    address,
    counterparty,
    currency,
    department,
    design,
    encode_lines,
    payment,
    payment_type,
    purchase_order,
    sales_order,
    staff,
    transaction,
)


def states_with(**tables):
    """Committed states built from literal rows (as earlier packets would leave them)."""
    states = {s.name: st.empty(s) for s in SOURCE_TABLES}
    for name, rows in tables.items():
        parsed = parse_objects(SOURCES[name], [("k.jsonl", encode_lines(rows))])
        states[name], _ = st.upsert(states[name], parsed.rows, SOURCES[name].key)
    return states


def run(table, rows, states=None):
    source = SOURCES[table]
    parsed = parse_objects(source, [("k.jsonl", encode_lines(rows))])
    return transform(source, [parsed], states or states_with(), f"{table}:1")


def output(result, table):
    """The output of `table`, its Parquet read back."""
    [out] = [o for o in result.outputs if o.table == table]
    return SimpleNamespace(rows=from_parquet(out.body), updated=out.updated)


def report(result, table):
    [r] = [r for r in result.reports if r.table == table]
    return r


DDL = {
    "fact_sales_order": [
        ("sales_order_id", "int32"), ("created_date", "date32[day]"), ("created_time", "time64[us]"),
        ("last_updated_date", "date32[day]"), ("last_updated_time", "time64[us]"),
        ("sales_staff_id", "int32"), ("counterparty_id", "int32"), ("units_sold", "int32"),
        ("unit_price", "decimal128(10, 2)"), ("currency_id", "int32"), ("design_id", "int32"),
        ("agreed_payment_date", "date32[day]"), ("agreed_delivery_date", "date32[day]"),
        ("agreed_delivery_location_id", "int32"),
    ],
    "dim_date": [
        ("date_id", "date32[day]"), ("year", "int32"), ("month", "int32"), ("day", "int32"),
        ("day_of_week", "int32"), ("day_name", "string"), ("month_name", "string"), ("quarter", "int32"),
    ],
    "dim_staff": [
        ("staff_id", "int32"), ("first_name", "string"), ("last_name", "string"),
        ("department_name", "string"), ("location", "string"), ("email_address", "string"),
    ],
    "dim_location": [
        ("location_id", "int32"), ("address_line_1", "string"), ("address_line_2", "string?"),
        ("district", "string?"), ("city", "string"), ("postal_code", "string"), ("country", "string"),
        ("phone", "string"),
    ],
    "dim_currency": [("currency_id", "int32"), ("currency_code", "string"), ("currency_name", "string")],
    "dim_design": [
        ("design_id", "int32"), ("design_name", "string"), ("file_location", "string"), ("file_name", "string"),
    ],
    "dim_counterparty": [
        ("counterparty_id", "int32"), ("counterparty_legal_name", "string"),
        ("counterparty_legal_address_line_1", "string"), ("counterparty_legal_address_line_2", "string?"),
        ("counterparty_legal_district", "string?"), ("counterparty_legal_city", "string"),
        ("counterparty_legal_postal_code", "string"), ("counterparty_legal_country", "string"),
        ("counterparty_legal_phone_number", "string"),
    ],
    "dim_transaction": [
        ("transaction_id", "int32"), ("transaction_type", "string"), ("sales_order_id", "int32?"),
        ("purchase_order_id", "int32?"),
    ],
    "dim_payment_type": [("payment_type_id", "int32"), ("payment_type_name", "string")],
    "fact_purchase_order": [
        ("purchase_order_id", "int32"), ("created_date", "date32[day]"), ("created_time", "time64[us]"),
        ("last_updated_date", "date32[day]"), ("last_updated_time", "time64[us]"), ("staff_id", "int32"),
        ("counterparty_id", "int32"), ("item_code", "string"), ("item_quantity", "int32"),
        ("item_unit_price", "decimal128(10, 2)"), ("currency_id", "int32"),
        ("agreed_delivery_date", "date32[day]"), ("agreed_payment_date", "date32[day]"),
        ("agreed_delivery_location_id", "int32"),
    ],
    "fact_payment": [
        ("payment_id", "int32"), ("created_date", "date32[day]"), ("created_time", "time64[us]"),
        ("last_updated_date", "date32[day]"), ("last_updated_time", "time64[us]"), ("transaction_id", "int32"),
        ("counterparty_id", "int32"), ("payment_amount", "decimal128(10, 2)"), ("currency_id", "int32"),
        ("payment_type_id", "int32"), ("paid", "bool"), ("payment_date", "date32[day]"),
    ],
}


@pytest.mark.parametrize("table", OUTPUT_TABLES)
def test_each_output_schema_is_exactly_the_ddl(table):
    """int → int32, numeric(10,2) → decimal128(10,2), date → date32, time → time64[us];
    NOT NULL everywhere except the columns marked '?'."""
    schema = ARROW_SCHEMAS[table]
    got = [(f.name, str(f.type) + ("?" if f.nullable else "")) for f in schema]
    assert got == DDL[table]



@pytest.mark.parametrize("table", OUTPUT_TABLES)
def test_the_pandera_schema_is_the_declared_columns_with_the_key_unique(table):
    """runtime/columns.py is the one declaration: the pandera schema and the Parquet
    schema both follow it, and only a dimension's (or dim_date's) key is unique."""
    declared = OUTPUT_COLUMNS[table]
    schema = SCHEMAS[table]
    assert tuple(schema.columns) == declared.names == tuple(ARROW_SCHEMAS[table].names)
    assert [c for c, col in schema.columns.items() if col.unique] == ([declared.key] if declared.key else [])
    assert schema.strict is True
    for c in declared.columns:
        assert schema.columns[c.name].dtype.type.pyarrow_dtype == arrow_type(c.type)
        assert schema.columns[c.name].nullable == c.nullable


def test_a_type_text_that_names_no_arrow_type_or_a_check_on_no_column_is_refused():
    assert arrow_type("decimal128(10, 2)") == pa.decimal128(10, 2)
    with pytest.raises(ValueError, match="no Arrow type"):
        arrow_type("decimal(10,2)")
    with pytest.raises(ValueError, match="undeclared columns"):
        table_schema("dim_design", {"design_title": ()})

def test_dim_currency_names_come_from_iso_4217():
    result = run("currency", [currency(1, "GBP"), currency(2, "USD"), currency(3, "EUR")])
    assert output(result, "dim_currency").rows.to_pylist() == [
        {"currency_id": 1, "currency_code": "GBP", "currency_name": "Pound Sterling"},
        {"currency_id": 2, "currency_code": "USD", "currency_name": "US Dollar"},
        {"currency_id": 3, "currency_code": "EUR", "currency_name": "Euro"},
    ]


def test_an_unknown_currency_code_is_quarantined_with_its_reason():
    result = run("currency", [currency(1, "GBP"), currency(2, "XYZ"), currency(3, "gbp")])
    assert output(result, "dim_currency").rows["currency_id"].to_pylist() == [1]
    assert report(result, "dim_currency").rows_rejected == 2
    lines = result.quarantine["dim_currency"].decode().splitlines()
    assert '"currency_code": "XYZ"' in lines[0] and "an ISO 4217 code" in lines[0]
    assert "three upper-case letters" in lines[1]


def test_dim_design():
    result = run("design", [design(8, "Wooden")])
    assert output(result, "dim_design").rows.to_pylist() == [
        {"design_id": 8, "design_name": "Wooden", "file_location": "/usr", "file_name": "wooden-20220717-npgz.json"}
    ]


def test_dim_location_keeps_null_address_line_2_and_district_and_apostrophes():
    result = run("address", [address(1, line_2=None, district=None, city="O'Connerchester"), address(2, line_2="Flat 2")])
    assert output(result, "dim_location").rows.to_pylist() == [
        {"location_id": 1, "address_line_1": "6826 Herzog Via", "address_line_2": None, "district": None,
         "city": "O'Connerchester", "postal_code": "28441", "country": "Turkey", "phone": "1803 637401"},
        {"location_id": 2, "address_line_1": "6826 Herzog Via", "address_line_2": "Flat 2", "district": "Avon",
         "city": "New Patienceburgh", "postal_code": "28441", "country": "Turkey", "phone": "1803 637401"},
    ]


def test_dim_staff_joins_the_department_and_keeps_leds_as_it_is():
    states = states_with(department=[department(6, "Dispatch", "Leds")])
    result = run("staff", [staff(1, 6, "Jeremie", "O'Franey", email="jeremie.ofraney@terrifictotes.com")], states)
    assert output(result, "dim_staff").rows.to_pylist() == [
        {"staff_id": 1, "first_name": "Jeremie", "last_name": "O'Franey", "department_name": "Dispatch",
         "location": "Leds", "email_address": "jeremie.ofraney@terrifictotes.com"}
    ]


def test_the_key_timestamp_counts_joined_rows_too():
    states = states_with(department=[department(6, updated="2023-01-01T00:00:00")])
    result = run("staff", [staff(1, 6, updated="2022-12-01T00:00:00")], states)
    assert output(result, "dim_staff").updated == datetime(2023, 1, 1)


def test_a_staff_row_with_an_unknown_department_is_quarantined_but_kept_in_state():
    states = states_with(department=[department(1)])
    result = run("staff", [staff(1, 1), staff(2, 99, first="Deron", last="Beier")], states)
    assert output(result, "dim_staff").rows["staff_id"].to_pylist() == [1]
    [line] = result.quarantine["dim_staff"].decode().splitlines()
    assert '"staff_id": 2' in line and "department_id: refers to a known department" in line
    assert sorted(result.state["staff_id"].to_pylist()) == [1, 2]


def test_a_staff_row_without_an_at_in_the_email_is_rejected():
    result = run("staff", [staff(1, 1, email="not-an-email")], states_with(department=[department(1)]))
    assert result.outputs == ()
    assert report(result, "dim_staff").failures[0].check == "an email address"


def test_dim_counterparty_takes_the_legal_address():
    states = states_with(address=[address(15, line_2=None, district=None, city="Aliso Viejo")])
    result = run("counterparty", [counterparty(1, 15, "Fahey and Sons")], states)
    assert output(result, "dim_counterparty").rows.to_pylist() == [
        {"counterparty_id": 1, "counterparty_legal_name": "Fahey and Sons",
         "counterparty_legal_address_line_1": "6826 Herzog Via", "counterparty_legal_address_line_2": None,
         "counterparty_legal_district": None, "counterparty_legal_city": "Aliso Viejo",
         "counterparty_legal_postal_code": "28441", "counterparty_legal_country": "Turkey",
         "counterparty_legal_phone_number": "1803 637401"}
    ]


def test_a_counterparty_with_an_unknown_address_is_quarantined_but_kept_in_state():
    result = run("counterparty", [counterparty(1, 15)], states_with(address=[address(1)]))
    assert result.outputs == ()
    assert "legal_address_id: refers to a known address" in result.quarantine["dim_counterparty"].decode()
    assert result.state["counterparty_id"].to_pylist() == [1]


ALL_DIMENSIONS = dict(
    currency=[currency(1)], design=[design(1)], address=[address(1)], department=[department(1)],
    counterparty=[counterparty(1, 1)], staff=[staff(1, 1)],
)


def test_fact_sales_order_splits_timestamps_and_keeps_the_price_exact():
    rows = [
        sales_order(2, created_at="2022-11-03T14:20:52.186000", updated="2022-11-03 14:20:52", unit_price=3.94),
        sales_order(3, unit_price="3.94"),
    ]
    result = run("sales_order", rows, states_with(**ALL_DIMENSIONS))
    facts = output(result, "fact_sales_order").rows.to_pylist()
    assert facts[0] == {
        "sales_order_id": 2, "created_date": date(2022, 11, 3), "created_time": time(14, 20, 52, 186000),
        "last_updated_date": date(2022, 11, 3), "last_updated_time": time(14, 20, 52),
        "sales_staff_id": 1, "counterparty_id": 1, "units_sold": 42972, "unit_price": Decimal("3.94"),
        "currency_id": 1, "design_id": 1, "agreed_payment_date": date(2022, 11, 8),
        "agreed_delivery_date": date(2022, 11, 7), "agreed_delivery_location_id": 1,
    }
    assert facts[1]["unit_price"] == Decimal("3.94")


def test_every_version_of_an_order_is_a_fact_and_exact_duplicates_are_written_once():
    v1 = sales_order(1, updated="2022-11-03T14:20:52.186000")
    v2 = sales_order(1, updated="2022-11-04T09:00:00", units_sold=10)
    result = run("sales_order", [v1, v2, v1], states_with(**ALL_DIMENSIONS))
    facts = output(result, "fact_sales_order").rows
    assert facts["units_sold"].to_pylist() == [42972, 10]
    assert report(result, "fact_sales_order").rows_skipped == 1


def test_a_different_row_for_a_version_already_seen_is_rejected_the_first_kept():
    a = sales_order(1, units_sold=5)
    b = sales_order(1, units_sold=6)
    result = run("sales_order", [a, b, sales_order(2), a], states_with(**ALL_DIMENSIONS))
    assert output(result, "fact_sales_order").rows["units_sold"].to_pylist() == [5, 42972]
    fact_report = report(result, "fact_sales_order")
    assert (fact_report.rows_rejected, fact_report.rows_skipped, fact_report.rows_in) == (1, 1, 4)
    assert "a different row for this version came first" in result.quarantine["fact_sales_order"].decode()


@pytest.mark.parametrize(
    "override, reason",
    [
        ({"staff_id": 99}, "sales_staff_id: refers to a known staff"),
        ({"counterparty_id": 99}, "counterparty_id: refers to a known counterparty"),
        ({"currency_id": 99}, "currency_id: refers to a known currency"),
        ({"design_id": 99}, "design_id: refers to a known design"),
        ({"agreed_delivery_location_id": 99}, "agreed_delivery_location_id: refers to a known address"),
        ({"units_sold": -1}, "units_sold: greater_than_or_equal_to(0)"),
        ({"unit_price": -0.5}, "unit_price: greater_than_or_equal_to(0)"),
        ({"created_at": None}, "created_date: not_nullable|created_time: not_nullable"),
        ({"agreed_payment_date": None}, "agreed_payment_date: not_nullable"),
    ],
)
def test_a_bad_fact_is_quarantined_as_its_source_row_with_the_reason(override, reason):
    bad = sales_order(2)
    bad.update(override)
    result = run("sales_order", [sales_order(1), bad], states_with(**ALL_DIMENSIONS))
    assert output(result, "fact_sales_order").rows["sales_order_id"].to_pylist() == [1]
    [line] = result.quarantine["fact_sales_order"].decode().splitlines()
    quarantined = json.loads(line)
    assert quarantined.pop("_reasons") == reason.split("|")
    waits = quarantined.pop("_waits_for", None)
    if "refers to" in reason:
        assert waits == {reason.split(": refers to a known ")[1]: 99}
    else:
        assert waits is None
    assert (quarantined.pop("_object"), quarantined.pop("_line")) == ("k.jsonl", 2)
    assert quarantined == bad


def test_a_fact_whose_staff_has_no_known_department_is_quarantined():
    states = states_with(**{**ALL_DIMENSIONS, "staff": [staff(1, 1), staff(2, 99)]})
    result = run("sales_order", [sales_order(1, staff_id=2)], states)
    assert "sales_staff_id: refers to a known staff" in result.quarantine["fact_sales_order"].decode()


def test_dim_date_holds_every_referenced_date_and_nothing_else_monday_is_1():
    rows = [
        sales_order(1, created_at="2022-11-06T23:59:59", updated="2022-11-07T00:00:00",
                    agreed_payment_date="2023-01-01", agreed_delivery_date="2024-02-29"),
        sales_order(2, agreed_delivery_location_id=99, agreed_payment_date="2030-05-05"),  # rejected
    ]
    result = run("sales_order", rows, states_with(**ALL_DIMENSIONS))
    assert output(result, "dim_date").rows.to_pylist() == [
        {"date_id": date(2022, 11, 6), "year": 2022, "month": 11, "day": 6, "day_of_week": 7,
         "day_name": "Sunday", "month_name": "November", "quarter": 4},
        {"date_id": date(2022, 11, 7), "year": 2022, "month": 11, "day": 7, "day_of_week": 1,
         "day_name": "Monday", "month_name": "November", "quarter": 4},
        {"date_id": date(2023, 1, 1), "year": 2023, "month": 1, "day": 1, "day_of_week": 7,
         "day_name": "Sunday", "month_name": "January", "quarter": 1},
        {"date_id": date(2024, 2, 29), "year": 2024, "month": 2, "day": 29, "day_of_week": 4,
         "day_name": "Thursday", "month_name": "February", "quarter": 1},
    ]
    assert output(result, "dim_date").updated == output(result, "fact_sales_order").updated


def test_a_packet_of_only_rejected_facts_writes_no_fact_and_no_dim_date():
    result = run("sales_order", [sales_order(1, staff_id=99)], states_with(**ALL_DIMENSIONS))
    assert result.outputs == ()


def test_the_transform_does_not_change_its_inputs():
    states = states_with(**ALL_DIMENSIONS)
    before = {k: v.to_pylist() for k, v in states.items()}
    run("staff", [staff(1, 1, updated="2030-01-01T00:00:00")], states)
    assert {k: v.to_pylist() for k, v in states.items()} == before


# -- the Purchases and Payments stars -----------------------------------------------

ALL_DIMENSIONS_AND_PAYMENTS = dict(
    **ALL_DIMENSIONS, payment_type=[payment_type(1)],
    transaction=[transaction(1, "SALE", 1, None), transaction(2, "PURCHASE", None, 1)],
)


def test_dim_payment_type():
    result = run("payment_type", [payment_type(1, "SALES_RECEIPT"), payment_type(3, "PURCHASE_PAYMENT")])
    assert output(result, "dim_payment_type").rows.to_pylist() == [
        {"payment_type_id": 1, "payment_type_name": "SALES_RECEIPT"},
        {"payment_type_id": 3, "payment_type_name": "PURCHASE_PAYMENT"},
    ]


def test_dim_transaction_names_one_order_and_keeps_the_other_null():
    result = run("transaction", [transaction(1, "PURCHASE", None, 2), transaction(3, "SALE", 1, None)])
    rows = output(result, "dim_transaction").rows
    assert rows.to_pylist() == [
        {"transaction_id": 1, "transaction_type": "PURCHASE", "sales_order_id": None, "purchase_order_id": 2},
        {"transaction_id": 3, "transaction_type": "SALE", "sales_order_id": 1, "purchase_order_id": None},
    ]
    assert rows.schema.field("sales_order_id").type == pa.int32()


@pytest.mark.parametrize(
    "row, reasons",
    [
        (transaction(2, "SALE", 5, 6), ["exactly one of sales_order_id and purchase_order_id is set"]),
        (transaction(2, "PURCHASE", None, None), ["exactly one of sales_order_id and purchase_order_id is set"]),
        (transaction(2, "SALE", None, 6), ["a SALE names a sales order, a PURCHASE a purchase order"]),
        (transaction(2, "REFUND", None, 5), ["transaction_type: SALE or PURCHASE"]),
    ],
)
def test_a_transaction_naming_both_orders_neither_or_the_wrong_one_is_quarantined(row, reasons):
    result = run("transaction", [transaction(1), row])
    assert output(result, "dim_transaction").rows["transaction_id"].to_pylist() == [1]
    [line] = result.quarantine["dim_transaction"].decode().splitlines()
    quarantined = json.loads(line)
    assert quarantined.pop("_reasons") == reasons
    assert (quarantined.pop("_object"), quarantined.pop("_line")) == ("k.jsonl", 2)
    assert quarantined == row


def test_fact_purchase_order_exact_row():
    rows = [purchase_order(1, item_unit_price="361.39"), purchase_order(2, item_code="QLZLEXR", item_quantity=0)]
    result = run("purchase_order", rows, states_with(**ALL_DIMENSIONS))
    facts = output(result, "fact_purchase_order").rows.to_pylist()
    assert facts[0] == {
        "purchase_order_id": 1, "created_date": date(2022, 11, 3), "created_time": time(14, 20, 52, 187000),
        "last_updated_date": date(2022, 11, 3), "last_updated_time": time(14, 20, 52, 187000),
        "staff_id": 1, "counterparty_id": 1, "item_code": "ZDOI5EA", "item_quantity": 371,
        "item_unit_price": Decimal("361.39"), "currency_id": 1, "agreed_delivery_date": date(2022, 11, 9),
        "agreed_payment_date": date(2022, 11, 7), "agreed_delivery_location_id": 1,
    }
    assert (facts[1]["item_code"], facts[1]["item_quantity"]) == ("QLZLEXR", 0)
    assert output(result, "dim_date").rows["date_id"].to_pylist() == [
        date(2022, 11, 3), date(2022, 11, 7), date(2022, 11, 9)
    ]


def test_a_purchase_order_version_sent_twice_is_written_once_and_a_different_one_rejected():
    """The version screen covers text columns too: item_code alone tells them apart."""
    a = purchase_order(1, item_code="AAA")
    result = run("purchase_order", [a, purchase_order(1, item_code="BBB"), a], states_with(**ALL_DIMENSIONS))
    assert output(result, "fact_purchase_order").rows["item_code"].to_pylist() == ["AAA"]
    fact_report = report(result, "fact_purchase_order")
    assert (fact_report.rows_rejected, fact_report.rows_skipped) == (1, 1)
    [line] = result.quarantine["fact_purchase_order"].decode().splitlines()
    assert "one row per version (purchase_order_id, last_updated)" in line and '"BBB"' in line


@pytest.mark.parametrize(
    "override, reason",
    [
        ({"staff_id": 99}, "staff_id: refers to a known staff"),
        ({"counterparty_id": 99}, "counterparty_id: refers to a known counterparty"),
        ({"currency_id": 99}, "currency_id: refers to a known currency"),
        ({"agreed_delivery_location_id": 99}, "agreed_delivery_location_id: refers to a known address"),
        ({"item_quantity": -1}, "item_quantity: greater_than_or_equal_to(0)"),
        ({"item_code": None}, "item_code: not_nullable"),
    ],
)
def test_a_bad_purchase_order_is_quarantined_with_the_reason(override, reason):
    bad = purchase_order(2)
    bad.update(override)
    result = run("purchase_order", [purchase_order(1), bad], states_with(**ALL_DIMENSIONS))
    assert output(result, "fact_purchase_order").rows["purchase_order_id"].to_pylist() == [1]
    [line] = result.quarantine["fact_purchase_order"].decode().splitlines()
    quarantined = json.loads(line)
    assert quarantined.pop("_reasons") == [reason]
    waits = quarantined.pop("_waits_for", None)
    assert waits == ({reason.split(": refers to a known ")[1]: 99} if "refers to" in reason else None)
    assert (quarantined.pop("_object"), quarantined.pop("_line")) == ("k.jsonl", 2)
    assert quarantined == bad


def test_fact_payment_exact_row_without_the_account_numbers():
    result = run("payment", [payment(1, payment_amount="552548.62")], states_with(**ALL_DIMENSIONS_AND_PAYMENTS))
    assert output(result, "fact_payment").rows.to_pylist() == [
        {"payment_id": 1, "created_date": date(2022, 11, 3), "created_time": time(14, 20, 52, 186000),
         "last_updated_date": date(2022, 11, 3), "last_updated_time": time(14, 20, 52, 186000),
         "transaction_id": 1, "counterparty_id": 1, "payment_amount": Decimal("552548.62"), "currency_id": 1,
         "payment_type_id": 1, "paid": False, "payment_date": date(2022, 11, 7)}
    ]
    assert output(result, "dim_date").rows["date_id"].to_pylist() == [date(2022, 11, 3), date(2022, 11, 7)]


def test_a_payment_whose_paid_turns_true_is_a_second_fact_row():
    unpaid = payment(1)
    paid = payment(1, updated="2022-11-07T07:55:11.885000", paid=True)
    result = run("payment", [unpaid, paid, unpaid], states_with(**ALL_DIMENSIONS_AND_PAYMENTS))
    facts = output(result, "fact_payment").rows
    assert facts.select(["payment_id", "paid", "last_updated_date"]).to_pylist() == [
        {"payment_id": 1, "paid": False, "last_updated_date": date(2022, 11, 3)},
        {"payment_id": 1, "paid": True, "last_updated_date": date(2022, 11, 7)},
    ]
    assert report(result, "fact_payment").rows_skipped == 1
    assert output(result, "dim_date").rows["date_id"].to_pylist() == [date(2022, 11, 3), date(2022, 11, 7)]


@pytest.mark.parametrize(
    "override, waits_for",
    [
        ({"payment_type_id": 99}, {"payment_type": 99}),
        ({"transaction_id": 99}, {"transaction": 99}),
        ({"counterparty_id": 99}, {"counterparty": 99}),
        ({"currency_id": 99}, {"currency": 99}),
        ({"transaction_id": 7}, {"transaction": 7}),  # in the state, but naming both orders
    ],
)
def test_a_payment_waits_for_an_unknown_payment_type_transaction_counterparty_or_currency(override, waits_for):
    states = states_with(**{**ALL_DIMENSIONS_AND_PAYMENTS, "transaction": [transaction(1), transaction(7, "SALE", 1, 2)]})
    bad = payment(2, **override)
    result = run("payment", [payment(1), bad], states)
    assert output(result, "fact_payment").rows["payment_id"].to_pylist() == [1]
    [line] = result.quarantine["fact_payment"].decode().splitlines()
    quarantined = json.loads(line)
    [(dimension, _)] = waits_for.items()
    column = {"payment_type": "payment_type_id", "transaction": "transaction_id"}.get(dimension, f"{dimension}_id")
    assert quarantined.pop("_reasons") == [f"{column}: refers to a known {dimension}"]
    assert quarantined.pop("_waits_for") == waits_for
    assert (quarantined.pop("_object"), quarantined.pop("_line")) == ("k.jsonl", 2)
    assert quarantined == bad


# -- the version screen over generated inputs -----------------------------------------


@settings(max_examples=40, deadline=None)
@given(hst.lists(hst.tuples(hst.integers(1, 4), hst.integers(0, 2), hst.booleans(), hst.sampled_from(["A", "B", None])),
                 max_size=30))
def test_any_mix_of_payment_versions_writes_the_first_row_of_each_version_once(items):
    """Versions (payment_id, last_updated) repeated with the same or other content (the
    bool `paid`, the payment_date): the first row of each version is written, exact
    repeats are skipped, other rows for a version are rejected."""
    rows = [
        payment(i, updated=f"2022-11-0{3 + d}T10:00:00", paid=paid,
                payment_date="2022-11-07" if text is None else f"2022-11-0{ord(text) - 60}")
        for i, d, paid, text in items
    ]
    result = run("payment", rows, states_with(**ALL_DIMENSIONS_AND_PAYMENTS))
    first: dict = {}
    skipped = rejected = 0
    for row in rows:
        version = (row["payment_id"], row["last_updated"])
        if version not in first:
            first[version] = row
        elif first[version] == row:
            skipped += 1
        else:
            rejected += 1
    written = output(result, "fact_payment").rows.to_pylist() if first else []
    assert [(r["payment_id"], r["paid"], str(r["payment_date"])) for r in written] == [
        (r["payment_id"], r["paid"], r["payment_date"]) for r in first.values()
    ]
    fact_report = report(result, "fact_payment")
    assert (fact_report.rows_written, fact_report.rows_skipped, fact_report.rows_rejected) == (
        len(first), skipped, rejected,
    )


@settings(max_examples=30, deadline=None)
@given(hst.lists(hst.tuples(hst.integers(1, 4), hst.sampled_from(["ZDOI5EA", "QLZLEXR", "ZDOI5EB"])), max_size=20))
def test_purchase_order_versions_told_apart_by_their_text_alone(items):
    """Every row has the same last_updated: only item_code (text) tells a repeat of a
    version from a different row for it."""
    rows = [purchase_order(i, item_code=code) for i, code in items]
    result = run("purchase_order", rows, states_with(**ALL_DIMENSIONS))
    first: dict = {}
    for i, code in items:
        first.setdefault(i, code)
    repeats = [c == first[i] for n, (i, c) in enumerate(items) if i in dict(items[:n])]
    written = output(result, "fact_purchase_order").rows.to_pylist() if items else []
    assert [(r["purchase_order_id"], r["item_code"]) for r in written] == list(first.items())
    fact_report = report(result, "fact_purchase_order")
    assert (fact_report.rows_skipped, fact_report.rows_rejected) == (sum(repeats), len(repeats) - sum(repeats))
