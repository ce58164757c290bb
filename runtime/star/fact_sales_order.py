"""fact_sales_order: every version of every sales order, split into dates and times."""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc

from runtime.validation import LINE, UPDATED, column

_ID = pa.int32()
SCHEMA = pdv.DataFrameSchema(
    {
        "sales_order_id": column(_ID),
        "created_date": column(pa.date32()),
        "created_time": column(pa.time64("us")),
        "last_updated_date": column(pa.date32()),
        "last_updated_time": column(pa.time64("us")),
        "sales_staff_id": column(_ID),
        "counterparty_id": column(_ID),
        "units_sold": column(_ID, pdv.Check.ge(0)),
        # numeric(10,2): the type itself (enforced where rows are read) allows no
        # more than 2 decimal places.
        "unit_price": column(pa.decimal128(10, 2), pdv.Check.ge(0)),
        "currency_id": column(_ID),
        "design_id": column(_ID),
        "agreed_payment_date": column(pa.date32()),
        "agreed_delivery_date": column(pa.date32()),
        "agreed_delivery_location_id": column(_ID),
    },
    # One row per order version (sales_order_id, last_updated) is checked across the
    # whole packet before validation (transform._Versions), not per batch here.
    strict=True,
)

# (fact column, dimension it refers to, the source table holding that dimension's keys)
REFERENCES = (
    ("sales_staff_id", "staff"),
    ("counterparty_id", "counterparty"),
    ("currency_id", "currency"),
    ("design_id", "design"),
    ("agreed_delivery_location_id", "address"),
)


def split_timestamp(ts: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """timestamp[us] → (date32, time64[us]), vectorized, correct before 1970 too."""
    day = pc.floor_temporal(ts, unit="day")
    time_of_day = pc.subtract(pc.cast(ts, pa.int64()), pc.cast(day, pa.int64()))
    return pc.cast(day, pa.date32()), pc.cast(time_of_day, pa.time64("us"))


def build(sales_order: pa.Table) -> pa.Table:
    """Sales order rows → fact candidates, one per row."""
    rows = sales_order
    created_date, created_time = split_timestamp(rows["created_at"])
    updated_date, updated_time = split_timestamp(rows["last_updated"])
    return pa.table(
        {
            "sales_order_id": rows["sales_order_id"],
            "created_date": created_date,
            "created_time": created_time,
            "last_updated_date": updated_date,
            "last_updated_time": updated_time,
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
