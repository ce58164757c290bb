"""fact_payment: every version of every payment (a payment whose `paid` turns true is
a second row). The source's bank account numbers are not written.

Its references and the dates dim_date must hold are declared in runtime/tables.py.
"""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.star.audit import audit_columns
from runtime.validation import LINE, UPDATED, column

_ID = pa.int32()
SCHEMA = pdv.DataFrameSchema(
    {
        "payment_id": column(_ID),
        "created_date": column(pa.date32()),
        "created_time": column(pa.time64("us")),
        "last_updated_date": column(pa.date32()),
        "last_updated_time": column(pa.time64("us")),
        "transaction_id": column(_ID),
        "counterparty_id": column(_ID),
        # numeric(10,2) exactly, enforced where rows are read; refunds may be negative.
        "payment_amount": column(pa.decimal128(10, 2)),
        "currency_id": column(_ID),
        "payment_type_id": column(_ID),
        "paid": column(pa.bool_()),
        "payment_date": column(pa.date32()),
    },
    strict=True,
)

_SAME = ("payment_id", "transaction_id", "counterparty_id", "payment_amount", "currency_id",
         "payment_type_id", "paid", "payment_date")


def build(payment: pa.Table) -> pa.Table:
    """Payment rows → fact candidates, one per row."""
    rows = payment
    columns = {name: rows[name] for name in _SAME} | audit_columns(rows)
    return pa.table({**{name: columns[name] for name in SCHEMA.columns}, LINE: rows[LINE], UPDATED: rows["last_updated"]})
