"""The three star schemas: one module per output table, its pandera schema beside the
pure function that builds its rows. `MODULES` is the registry the rest iterates; the
tables' edges (joins, references, dates) are declared in runtime/tables.py."""

from __future__ import annotations

from types import ModuleType

import pandera.pandas as pdv
import pyarrow as pa

from runtime.star import (
    dim_counterparty,
    dim_currency,
    dim_date,
    dim_design,
    dim_location,
    dim_payment_type,
    dim_staff,
    dim_transaction,
    fact_payment,
    fact_purchase_order,
    fact_sales_order,
)
from runtime.tables import OUTPUT_TABLES
from runtime.validation import arrow_schema

_MODULES: dict[str, ModuleType] = {
    "dim_date": dim_date,
    "dim_staff": dim_staff,
    "dim_location": dim_location,
    "dim_currency": dim_currency,
    "dim_design": dim_design,
    "dim_counterparty": dim_counterparty,
    "dim_transaction": dim_transaction,
    "dim_payment_type": dim_payment_type,
    "fact_sales_order": fact_sales_order,
    "fact_purchase_order": fact_purchase_order,
    "fact_payment": fact_payment,
}
assert set(_MODULES) == set(OUTPUT_TABLES), "star modules and runtime/tables.py disagree"
MODULES: dict[str, ModuleType] = {name: _MODULES[name] for name in OUTPUT_TABLES}

SCHEMAS: dict[str, pdv.DataFrameSchema] = {name: m.SCHEMA for name, m in MODULES.items()}

# The Parquet schema of each output table, derived from its pandera schema.
ARROW_SCHEMAS: dict[str, pa.Schema] = {name: arrow_schema(s) for name, s in SCHEMAS.items()}
