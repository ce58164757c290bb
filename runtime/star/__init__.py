"""The Sales star schema: one module per output table, its pandera schema beside the
pure function that builds its rows. `SCHEMAS` is the registry the rest iterates."""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.star import (
    dim_counterparty,
    dim_currency,
    dim_date,
    dim_design,
    dim_location,
    dim_staff,
    fact_sales_order,
)
from runtime.tables import OUTPUT_TABLES
from runtime.validation import arrow_schema

SCHEMAS: dict[str, pdv.DataFrameSchema] = {
    "dim_date": dim_date.SCHEMA,
    "dim_staff": dim_staff.SCHEMA,
    "dim_location": dim_location.SCHEMA,
    "dim_currency": dim_currency.SCHEMA,
    "dim_design": dim_design.SCHEMA,
    "dim_counterparty": dim_counterparty.SCHEMA,
    "fact_sales_order": fact_sales_order.SCHEMA,
}
assert tuple(SCHEMAS) == OUTPUT_TABLES, "star modules and tables.OUTPUT_TABLES disagree"

# The Parquet schema of each output table, derived from its pandera schema.
ARROW_SCHEMAS: dict[str, pa.Schema] = {name: arrow_schema(s) for name, s in SCHEMAS.items()}
