"""fact_payment: every version of every payment (a payment whose `paid` turns true is
a second row). The source's bank account numbers are not written.

Its references and the dates dim_date must hold are declared in runtime/tables.py.
"""

from __future__ import annotations

import pyarrow as pa

from runtime.star.audit import audit_columns
from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

# payment_amount is numeric(10,2) exactly, enforced where rows are read; refunds may be negative.
SCHEMA = table_schema("fact_payment")

_SAME = ("payment_id", "transaction_id", "counterparty_id", "payment_amount", "currency_id",
         "payment_type_id", "paid", "payment_date")


def build(payment: pa.Table) -> pa.Table:
    """Payment rows → fact candidates, one per row."""
    rows = payment
    columns = {name: rows[name] for name in _SAME} | audit_columns(rows)
    return pa.table({**{name: columns[name] for name in SCHEMA.columns}, LINE: rows[LINE], UPDATED: rows["last_updated"]})
