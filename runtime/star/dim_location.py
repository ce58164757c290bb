"""dim_location: one row per address (location_id = address_id)."""

from __future__ import annotations

import pyarrow as pa

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

SCHEMA = table_schema("dim_location")


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
