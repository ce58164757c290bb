"""dim_counterparty: counterparties joined with their legal address."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

SCHEMA = table_schema("dim_counterparty")

_ADDRESS = {
    "address_line_1": "counterparty_legal_address_line_1",
    "address_line_2": "counterparty_legal_address_line_2",
    "district": "counterparty_legal_district",
    "city": "counterparty_legal_city",
    "postal_code": "counterparty_legal_postal_code",
    "country": "counterparty_legal_country",
    "phone": "counterparty_legal_phone_number",
}


def build(counterparty: pa.Table, addresses: pa.Table) -> pa.Table:
    """Counterparty rows (each with a known legal address) → dim_counterparty candidates.

    `__line` is the counterparty's line when it came in this packet, else the
    address's (an address change re-emits the counterparties registered there).
    """
    addr = addresses.select(["address_id", *_ADDRESS, "last_updated", LINE])
    addr = addr.rename_columns(["legal_address_id", *_ADDRESS.values(), "addr_updated", "addr_line"])
    joined = counterparty.join(addr, "legal_address_id", join_type="left outer")
    joined = joined.sort_by("counterparty_id")
    return pa.table(
        {
            **{name: joined[name] for name in SCHEMA.columns},
            LINE: pc.coalesce(joined[LINE], joined["addr_line"]),
            UPDATED: pc.max_element_wise(joined["last_updated"], joined["addr_updated"]),
        }
    )
