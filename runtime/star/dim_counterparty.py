"""dim_counterparty: counterparties joined with their legal address."""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc

from runtime.validation import LINE, UPDATED, column

SCHEMA = pdv.DataFrameSchema(
    {
        "counterparty_id": column(pa.int32(), unique=True),
        "counterparty_legal_name": column(pa.string()),
        "counterparty_legal_address_line_1": column(pa.string()),
        "counterparty_legal_address_line_2": column(pa.string(), nullable=True),
        "counterparty_legal_district": column(pa.string(), nullable=True),
        "counterparty_legal_city": column(pa.string()),
        "counterparty_legal_postal_code": column(pa.string()),
        "counterparty_legal_country": column(pa.string()),
        "counterparty_legal_phone_number": column(pa.string()),
    },
    strict=True,
)

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
