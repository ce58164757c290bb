"""dim_transaction: a sale or a purchase, naming exactly one order.

sales_order_id and purchase_order_id are plain columns, not foreign keys: a
transaction may name an order the warehouse has not seen yet. A row naming both or
neither, or the order its type does not say, is quarantined with the reason.
"""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

TYPES = ("SALE", "PURCHASE")


def _exactly_one(frame) -> object:
    return frame["sales_order_id"].isna() != frame["purchase_order_id"].isna()


def _type_names_the_order(frame) -> object:
    return (frame["transaction_type"] == "SALE") == frame["sales_order_id"].notna()


SCHEMA = table_schema(
    "dim_transaction",
    {"transaction_type": (pdv.Check.isin(list(TYPES), error="SALE or PURCHASE"),)},
    frame_checks=(
        # ignore_na=False: a row with both ids null must fail too, not be skipped.
        pdv.Check(_exactly_one, ignore_na=False,
                  error="exactly one of sales_order_id and purchase_order_id is set"),
        pdv.Check(_type_names_the_order, ignore_na=False,
                  error="a SALE names a sales order, a PURCHASE a purchase order"),
    ),
)


def build(transaction: pa.Table) -> pa.Table:
    """Changed transaction rows → dim_transaction candidates."""
    return transaction.select([*SCHEMA.columns, LINE]).append_column(UPDATED, transaction["last_updated"])
