"""The analysts' questions, one per star (warehouse/questions/*.sql), answered from the
loaded fixture run and held against the same answer computed straight from the
Parquet in plain Python. Run with `-s` to see the answers.

A question whose fact table the runtime does not declare yet has no rows to answer
from: the test then asserts that its answer is empty (the table exists in the DDL
and nothing was loaded into it), and checks the answer once the table is declared.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from datetime import date, time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtime.tables import OUTPUT_TABLES
from sandbox.local_store import LocalDirectory
from sandbox.analysts import QUESTIONS, answer, render
from sandbox.warehouse import load
from tests.warehouse import parquet_rows
from tests.warehouse.ddl import ddl_schema

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def latest(rows: list[dict], key: str) -> list[dict]:
    """The latest version of each id: the greatest last_updated, the later row on a tie."""
    ordered = sorted(enumerate(rows), key=lambda ir: (ir[1][key], ir[1]["last_updated_date"],
                                                      ir[1]["last_updated_time"], ir[0]))
    return list({row[key]: row for _, row in ordered}.values())


def sales_per_currency_per_month(store) -> list[tuple]:
    currency = parquet_rows.dimension(store, "dim_currency", "currency_id")
    groups = defaultdict(lambda: [0, 0, Decimal(0)])
    for row in latest(parquet_rows.rows(store, "fact_sales_order"), "sales_order_id"):
        day = row["created_date"]
        group = groups[(currency[row["currency_id"]]["currency_code"], day.year, day.month, MONTHS[day.month - 1])]
        group[0] += 1
        group[1] += row["units_sold"]
        group[2] += row["units_sold"] * row["unit_price"]
    return [(*k, *v) for k, v in sorted(groups.items())]


def purchase_spend_per_counterparty(store) -> list[tuple]:
    currency = parquet_rows.dimension(store, "dim_currency", "currency_id")
    counterparty = parquet_rows.dimension(store, "dim_counterparty", "counterparty_id")
    groups = defaultdict(lambda: [0, Decimal(0)])
    for row in latest(parquet_rows.rows(store, "fact_purchase_order"), "purchase_order_id"):
        group = groups[(counterparty[row["counterparty_id"]]["counterparty_legal_name"],
                        currency[row["currency_id"]]["currency_code"])]
        group[0] += 1
        group[1] += row["item_quantity"] * row["item_unit_price"]
    answers = [(*k, *v) for k, v in groups.items()]
    return sorted(answers, key=lambda a: (-a[3], a[0], a[1]))


def payments_paid_vs_unpaid_per_payment_type(store) -> list[tuple]:
    currency = parquet_rows.dimension(store, "dim_currency", "currency_id")
    payment_type = parquet_rows.dimension(store, "dim_payment_type", "payment_type_id")
    groups = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])
    for row in latest(parquet_rows.rows(store, "fact_payment"), "payment_id"):
        group = groups[(payment_type[row["payment_type_id"]]["payment_type_name"],
                        currency[row["currency_id"]]["currency_code"])]
        side = 0 if row["paid"] else 2
        group[side] += 1
        group[side + 1] += row["payment_amount"]
    return [(*k, *v) for k, v in sorted(groups.items())]


EXPECTED = {
    "fact_sales_order": sales_per_currency_per_month,
    "fact_purchase_order": purchase_spend_per_counterparty,
    "fact_payment": payments_paid_vs_unpaid_per_payment_type,
}


@pytest.mark.parametrize("question", QUESTIONS, ids=lambda q: q.star)
def test_each_star_answers_its_analysts_question(loaded_warehouse, fixture_run, question):
    columns, rows = answer(loaded_warehouse, question)
    print(f"\n{question.star} star: {question.title} ({len(rows)} rows)\n{render(columns, rows)}")
    if question.fact not in OUTPUT_TABLES:  # the runtime's declaration, not a caught error
        assert rows == [], f"{question.fact} has rows but the runtime does not declare it"
        return
    assert rows, f"{question.fact} is declared but the question has no answer"
    assert rows == EXPECTED[question.fact](fixture_run.store)


def test_the_sales_answer_counts_each_order_once(loaded_warehouse):
    loaded = loaded_warehouse
    """History keeps several versions of an order; the answer counts the latest only."""
    [sales] = [q for q in QUESTIONS if q.fact == "fact_sales_order"]
    _, rows = answer(loaded, sales)
    orders = loaded.execute("SELECT count(DISTINCT sales_order_id), count(*) FROM fact_sales_order").fetchone()
    assert sum(r[4] for r in rows) == orders[0]
    assert {r[0] for r in rows} == {c for (c,) in loaded.execute("SELECT currency_code FROM dim_currency")}


# A small warehouse built by hand, so the Purchases and Payments questions (and the
# loader on all eleven tables) are exercised before the runtime writes those stars.
_JAN1, _JAN2, _FEB1 = date(2024, 1, 1), date(2024, 1, 2), date(2024, 2, 1)
_T = time(9, 26, 10, 123456)
HAND_BUILT = {
    "dim_date": [[
        (_JAN1, 2024, 1, 1, 1, "Monday", "January", 1),
        (_JAN2, 2024, 1, 2, 2, "Tuesday", "January", 1),
        (_FEB1, 2024, 2, 1, 4, "Thursday", "February", 1),
    ]],
    "dim_staff": [[(1, "Jeremie", "Franey", "Purchasing", "Manchester", "jeremie.franey@terrifictotes.com")]],
    "dim_location": [[(1, "6826 Herzog Via", None, None, "New Patienceburgh", "28441", "Turkey", "1803 637401")]],
    "dim_currency": [[(1, "GBP", "Pound Sterling"), (2, "EUR", "Euro")]],
    "dim_counterparty": [[
        (1, "Fahey and Sons", "6826 Herzog Via", None, None, "New Patienceburgh", "28441", "Turkey", "1803 637401"),
        (2, "Leannon, Predovic and Morar", "6826 Herzog Via", None, "Avon", "New Patienceburgh", "28441",
         "Turkey", "1803 637401"),
    ]],
    "dim_transaction": [[(1, "PURCHASE", None, 1), (2, "SALE", 7, None), (3, "PURCHASE", None, 2)]],
    "dim_payment_type": [[(1, "SALES_RECEIPT"), (2, "PURCHASE_PAYMENT")]],
    # purchase_order_id, created date/time, last_updated date/time, staff, counterparty,
    # item_code, item_quantity, item_unit_price, currency, agreed delivery, agreed payment,
    # delivery location.
    "fact_purchase_order": [
        [(1, _JAN1, _T, _JAN1, _T, 1, 1, "ZDOI5EA", 10, Decimal("2.50"), 1, _JAN2, _FEB1, 1),
         (2, _JAN1, _T, _JAN1, _T, 1, 2, "QLZLEXR", 3, Decimal("100.00"), 2, _JAN2, _FEB1, 1)],
        # Order 1 again, later, with 12 items: the latest version counts.
        [(1, _JAN1, _T, _JAN2, _T, 1, 1, "ZDOI5EA", 12, Decimal("2.50"), 1, _JAN2, _FEB1, 1),
         (3, _JAN2, _T, _JAN2, _T, 1, 1, "AN3D85L", 1, Decimal("0.99"), 1, _JAN2, _FEB1, 1)],
    ],
    # payment_id, created date/time, last_updated date/time, transaction, counterparty,
    # amount, currency, payment type, paid, payment_date.
    "fact_payment": [
        [(1, _JAN1, _T, _JAN1, _T, 2, 1, Decimal("50.00"), 1, 1, False, _FEB1),
         (2, _JAN1, _T, _JAN1, _T, 1, 1, Decimal("30.00"), 1, 2, False, _FEB1),
         (3, _JAN1, _T, _JAN1, _T, 3, 2, Decimal("300.00"), 2, 2, True, _JAN2)],
        # Payment 1 turns paid: a second fact row, the one that counts.
        [(1, _JAN1, _T, _JAN2, _T, 2, 1, Decimal("50.00"), 1, 1, True, _FEB1)],
    ],
}


def hand_built_bucket(conn, root: Path) -> LocalDirectory:
    store = LocalDirectory(root)
    for table, packets in HAND_BUILT.items():
        schema = ddl_schema(conn, table)
        for n, rows in enumerate(packets, start=1):
            body = io.BytesIO()
            pq.write_table(pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema), body)
            store.put_if_absent(f"{table}/{table}_packet_{n}_processed_20240102T092610.123456Z.parquet",
                                body.getvalue(), {})
    return store


def test_the_purchases_and_payments_questions_on_a_hand_built_warehouse(warehouse, tmp_path):
    store = hand_built_bucket(warehouse, tmp_path)
    report = load(warehouse, store)
    assert len(report.loaded) == sum(len(p) for p in HAND_BUILT.values())
    by_fact = {q.fact: q for q in QUESTIONS}

    columns, spend = answer(warehouse, by_fact["fact_purchase_order"])
    print(f"\nPurchases star, hand-built warehouse:\n{render(columns, spend)}")
    assert spend == [
        ("Leannon, Predovic and Morar", "EUR", 1, Decimal("300.00")),
        ("Fahey and Sons", "GBP", 2, Decimal("30.99")),  # 12 x 2.50 + 1 x 0.99
    ]
    assert spend == purchase_spend_per_counterparty(store)

    columns, payments = answer(warehouse, by_fact["fact_payment"])
    print(f"\nPayments star, hand-built warehouse:\n{render(columns, payments)}")
    assert payments == [
        ("PURCHASE_PAYMENT", "EUR", 1, Decimal("300.00"), 0, Decimal("0")),
        ("PURCHASE_PAYMENT", "GBP", 0, Decimal("0"), 1, Decimal("30.00")),
        ("SALES_RECEIPT", "GBP", 1, Decimal("50.00"), 0, Decimal("0")),
    ]
    assert payments == payments_paid_vs_unpaid_per_payment_type(store)
    # The history is in the warehouse: both versions of payment 1 and purchase order 1.
    assert warehouse.execute("SELECT count(*) FROM fact_payment WHERE payment_id = 1").fetchone() == (2,)
    assert warehouse.execute("SELECT count(*) FROM fact_purchase_order WHERE purchase_order_id = 1").fetchone() == (2,)


def test_make_warehouse_loads_a_downloaded_bucket_and_prints_every_answer(fixture_run, tmp_path, capsys):
    from sandbox.analysts import main

    fixture_run.local_copy(tmp_path / "out")
    assert main([str(tmp_path / "out"), "--rows", "2"]) == 0
    shown = capsys.readouterr().out
    assert re.search(r"\n +fact_sales_order +4 +11,175 +11,175\n", shown)
    for question in QUESTIONS:
        assert f"{question.star} star: {question.title}" in shown
    assert "... 71 more rows" in shown  # the Sales answer: 73 currency-months
