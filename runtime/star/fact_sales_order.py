"""fact_sales_order: every version of every sales order, split into dates and times.

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
        "sales_order_id": column(_ID),
        "created_date": column(pa.date32()),
        "created_time": column(pa.time64("us")),
        "last_updated_date": column(pa.date32()),
        "last_updated_time": column(pa.time64("us")),
        "sales_staff_id": column(_ID),
        "counterparty_id": column(_ID),
        "units_sold": column(_ID, pdv.Check.ge(0)),
        # numeric(10,2): the type itself (enforced where rows are read) allows no
        # more than 2 decimal places.
        "unit_price": column(pa.decimal128(10, 2), pdv.Check.ge(0)),
        "currency_id": column(_ID),
        "design_id": column(_ID),
        "agreed_payment_date": column(pa.date32()),
        "agreed_delivery_date": column(pa.date32()),
        "agreed_delivery_location_id": column(_ID),
    },
    # One row per order version (sales_order_id, last_updated) is checked across the
    # whole packet before validation (transform's version screen), not per batch here.
    strict=True,
)


def build(sales_order: pa.Table) -> pa.Table:
    """Sales order rows → fact candidates, one per row."""
    rows = sales_order
    return pa.table(
        {
            "sales_order_id": rows["sales_order_id"],
            **audit_columns(rows),
            "sales_staff_id": rows["staff_id"],
            "counterparty_id": rows["counterparty_id"],
            "units_sold": rows["units_sold"],
            "unit_price": rows["unit_price"],
            "currency_id": rows["currency_id"],
            "design_id": rows["design_id"],
            "agreed_payment_date": rows["agreed_payment_date"],
            "agreed_delivery_date": rows["agreed_delivery_date"],
            "agreed_delivery_location_id": rows["agreed_delivery_location_id"],
            LINE: rows[LINE],
            UPDATED: rows["last_updated"],
        }
    )
