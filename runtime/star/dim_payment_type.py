"""dim_payment_type: payment_type_id, payment_type_name (e.g. SALES_RECEIPT)."""

from __future__ import annotations

import pyarrow as pa

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

SCHEMA = table_schema("dim_payment_type")


def build(payment_type: pa.Table) -> pa.Table:
    """Changed payment type rows → dim_payment_type candidates."""
    return payment_type.select([*SCHEMA.columns, LINE]).append_column(UPDATED, payment_type["last_updated"])
