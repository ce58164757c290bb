"""fact_purchase_order: every version of every purchase order, split into dates and times.

Its references and the dates dim_date must hold are declared in runtime/tables.py.
"""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.star.audit import audit_columns
from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

SCHEMA = table_schema(
    "fact_purchase_order",
    {
        "item_quantity": (pdv.Check.ge(0),),
        # numeric(10,2) exactly, enforced where rows are read.
        "item_unit_price": (pdv.Check.ge(0),),
    },
)

# Source columns that keep their name in the fact.
_SAME = (
    "purchase_order_id", "staff_id", "counterparty_id", "item_code", "item_quantity", "item_unit_price",
    "currency_id", "agreed_delivery_date", "agreed_payment_date", "agreed_delivery_location_id",
)


def build(purchase_order: pa.Table) -> pa.Table:
    """Purchase order rows → fact candidates, one per row."""
    rows = purchase_order
    columns = {name: rows[name] for name in _SAME} | audit_columns(rows)
    return pa.table({**{name: columns[name] for name in SCHEMA.columns}, LINE: rows[LINE], UPDATED: rows["last_updated"]})
