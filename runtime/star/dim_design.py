"""dim_design: design_id, design_name, file_location, file_name."""

from __future__ import annotations

import pyarrow as pa

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

SCHEMA = table_schema("dim_design")


def build(design: pa.Table) -> pa.Table:
    """Changed design rows → dim_design candidates."""
    return design.select([*SCHEMA.columns, LINE]).append_column(UPDATED, design["last_updated"])
