"""Dimension state holds only valid rows; a fact waits only for a key its dimension has
never emitted (docs/design.md#validation)."""

from __future__ import annotations

import pytest

from runtime.waits import open_waits
from tests.support.harness import Harness, currency, department, sales_order, staff

LATER = "2023-01-01T00:00:00"


@pytest.fixture
def h() -> Harness:
    h = Harness()
    h.invoke(*h.upload_dimensions(staff=[staff(1, 1), staff(2, 1, "Bo", "Ng")]))
    return h


def metric(h: Harness, name: str, table: str) -> float:
    return sum(m.get(name, 0) for m in h.metrics() if m["table"] == table and "wait" not in m)


def test_a_rejected_department_update_never_enters_the_state_nor_holds_its_staffs_sales(h):
    h.upload("department", 2, [department(1, name="", updated=LATER)])
    summary = h.invoke("department:2")
    # Rejected once, as the department row it is, not once per member of staff.
    [rejected] = h.quarantine("dim_staff", "department:2")
    assert rejected["department_id"] == 1 and rejected["_reasons"] == [
        "department_name: not empty or only whitespace (a NOT NULL text)"]
    assert summary.rows_rejected() == {"dim_staff": 1}
    assert metric(h, "RowsRejected", "dim_staff") == 1
    assert h.output_numbers("dim_staff") == [1]  # nothing re-emitted with a blank name
    h.upload("sales_order", 1, [sales_order(1, staff_id=1), sales_order(2, staff_id=2)])
    summary = h.invoke("sales_order:1")
    assert sorted(r["sales_order_id"] for r in h.rows("fact_sales_order")) == [1, 2]
    assert summary.rows_rejected() == {} and summary.rows_waiting() == {}
    assert metric(h, "RowsRejected", "fact_sales_order") == 0
    # A later valid update of the department is emitted as usual.
    h.upload("department", 3, [department(1, name="Sales", location="Leeds", updated="2023-02-01T00:00:00")])
    h.invoke("department:3")
    assert {r["location"] for r in h.rows("dim_staff")[-2:]} == {"Leeds"}
    h.check_invariants()


def test_a_rejected_currency_update_keeps_the_last_valid_row(h):
    h.upload("currency", 2, [currency(1, code="gb", updated=LATER)])
    h.invoke("currency:2")
    assert h.quarantine("dim_currency", "currency:2")[0]["currency_code"] == "gb"
    h.upload("sales_order", 1, [sales_order(1)])
    h.invoke("sales_order:1")  # currency 1 is still GBP in the warehouse: no wait
    assert len(h.rows("fact_sales_order")) == 1
    # An update older than the rejected one is still newer than the state's row.
    h.upload("currency", 3, [currency(1, code="EUR", updated="2022-12-01T00:00:00")])
    h.invoke("currency:3")
    assert [r["currency_code"] for r in h.rows("dim_currency")] == ["GBP", "EUR"]


def test_the_row_behind_a_rejected_one_in_the_same_packet_is_the_one_kept(h):
    h.upload("currency", 2, [currency(1, code="EUR", updated=LATER),
                             currency(1, code="bad", updated="2023-02-01T00:00:00")])
    h.invoke("currency:2")
    assert [r["currency_code"] for r in h.rows("dim_currency")] == ["GBP", "EUR"]
    assert len(h.quarantine("dim_currency", "currency:2")) == 1


def test_an_update_waiting_for_its_own_department_holds_no_fact_back(h):
    h.upload("staff", 2, [staff(1, 9, updated=LATER), staff(5, 9, "Al", "Bo", updated=LATER)])
    h.invoke("staff:2")  # department 9 is unknown: both wait in the state
    assert [r["staff_id"] for r in h.quarantine("dim_staff", "staff:2")] == [1, 5]
    assert metric(h, "RowsWaiting", "dim_staff") == 2 and metric(h, "RowsRejected", "dim_staff") == 0
    h.upload("sales_order", 1, [sales_order(1, staff_id=1), sales_order(2, staff_id=5)])
    h.invoke("sales_order:1")
    # dim_staff holds staff 1 (its old row): the FK holds. Staff 5 was never emitted.
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    assert [(w.row["sales_order_id"], w.waits_for) for w in open_waits(h.processed)] == [(2, {"staff": 5})]
    h.upload("department", 2, [department(9, "Dispatch", "Leeds")])
    h.invoke("department:2")  # both staff emitted; the waiting sale is replayed
    assert sorted(r["sales_order_id"] for r in h.rows("fact_sales_order")) == [1, 2]
    assert open_waits(h.processed) == []
    h.check_invariants()


def test_a_staff_row_failing_its_own_check_is_not_its_new_departments_fault(h):
    h.upload("staff", 2, [staff(6, 9, "Al", "Bo", email="no-at-sign", updated=LATER)])
    h.invoke("staff:2")  # waits for department 9 (its email is checked when it can be built)
    h.upload("department", 2, [department(9, "Dispatch", "Leeds")])
    h.invoke("department:2")
    # Department 9 is valid and enters the state; staff 6 is rejected for its email.
    h.upload("staff", 3, [staff(7, 9, "Cy", "Do", updated=LATER)])
    h.invoke("staff:3")
    assert [(r["staff_id"], r["department_name"]) for r in h.rows("dim_staff")][-1] == (7, "Dispatch")
    # Staff 6's re-emitted row is the one rejected (quarantined at the line that re-emitted it).
    [rejected] = h.quarantine("dim_staff", "department:2")
    assert rejected["_reasons"][0].startswith("email_address")
