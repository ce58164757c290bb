"""fact_sales_order: every version of every sales order, split into dates and times.

Its references and the dates dim_date must hold are declared in runtime/tables.py.
"""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.star.audit import audit_columns
from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

SCHEMA = table_schema(
    "fact_sales_order",
    {
        "units_sold": (pdv.Check.ge(0),),
        # numeric(10,2): the type itself (enforced where rows are read) allows no
        # more than 2 decimal places.
        "unit_price": (pdv.Check.ge(0),),
    },
    # One row per order version (sales_order_id, last_updated) is checked across the
    # whole packet before validation (transform's version screen), not per batch here.
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
