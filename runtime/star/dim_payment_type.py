"""dim_payment_type: payment_type_id, payment_type_name (e.g. SALES_RECEIPT)."""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.validation import LINE, UPDATED, column

SCHEMA = pdv.DataFrameSchema(
    {
        "payment_type_id": column(pa.int32(), unique=True),
        "payment_type_name": column(pa.string()),
    },
    strict=True,
)


def build(payment_type: pa.Table) -> pa.Table:
    """Changed payment type rows → dim_payment_type candidates."""
    return payment_type.select([*SCHEMA.columns, LINE]).append_column(UPDATED, payment_type["last_updated"])
