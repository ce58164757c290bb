"""dim_location: one row per address (location_id = address_id)."""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.validation import LINE, UPDATED, column

SCHEMA = pdv.DataFrameSchema(
    {
        "location_id": column(pa.int32(), unique=True),
        "address_line_1": column(pa.string()),
        "address_line_2": column(pa.string(), nullable=True),
        "district": column(pa.string(), nullable=True),
        "city": column(pa.string()),
        "postal_code": column(pa.string()),
        "country": column(pa.string()),
        "phone": column(pa.string()),
    },
    strict=True,
)


def build(address: pa.Table) -> pa.Table:
    """Changed address rows → dim_location candidates."""
    return pa.table(
        {
            "location_id": address["address_id"],
            **{name: address[name] for name in list(SCHEMA.columns)[1:]},
            LINE: address[LINE],
            UPDATED: address["last_updated"],
        }
    )
