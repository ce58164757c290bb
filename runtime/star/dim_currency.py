"""dim_currency: currency_id, currency_code, currency_name (the ISO 4217 name)."""

from __future__ import annotations

from functools import cache

import pandera.pandas as pdv
import pyarrow as pa
import pycountry

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED


@cache
def iso_4217() -> pa.Table:
    """Code → name for every current ISO 4217 currency, from pycountry (iso-codes)."""
    currencies = sorted(pycountry.currencies, key=lambda c: c.alpha_3)
    return pa.table(
        {
            "currency_code": [c.alpha_3 for c in currencies],
            "currency_name": [c.name for c in currencies],
        }
    )


SCHEMA = table_schema(
    "dim_currency",
    {
        "currency_code": (
            pdv.Check.str_matches(r"^[A-Z]{3}$", error="three upper-case letters"),
            pdv.Check.isin(iso_4217()["currency_code"].to_pylist(), error="an ISO 4217 code"),
        ),
    },
)


def build(currency: pa.Table) -> pa.Table:
    """Changed currency rows → dim_currency candidates (unknown codes get no name)."""
    named = currency.join(iso_4217(), "currency_code", join_type="left outer")
    named = named.sort_by("currency_id")
    return pa.table(
        {
            "currency_id": named["currency_id"],
            "currency_code": named["currency_code"],
            "currency_name": named["currency_name"],
            LINE: named[LINE],
            UPDATED: named["last_updated"],
        }
    )
