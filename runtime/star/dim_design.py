"""dim_design: design_id, design_name, file_location, file_name."""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa

from runtime.validation import LINE, UPDATED, column

SCHEMA = pdv.DataFrameSchema(
    {
        "design_id": column(pa.int32(), unique=True),
        "design_name": column(pa.string()),
        "file_location": column(pa.string()),
        "file_name": column(pa.string()),
    },
    strict=True,
)


def build(design: pa.Table) -> pa.Table:
    """Changed design rows → dim_design candidates."""
    return design.select([*SCHEMA.columns, LINE]).append_column(UPDATED, design["last_updated"])
