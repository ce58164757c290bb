"""The three star schemas: one module per output table, its pandera schema beside the
pure function that builds its rows. `MODULES` is the registry the rest iterates; the
tables' edges (joins, references, dates) are declared in runtime/tables.py, their
columns in runtime/columns.py."""

from __future__ import annotations

import importlib
from types import ModuleType

import pandera.pandas as pdv
import pyarrow as pa

from runtime.star.schema import arrow_schema
from runtime.tables import OUTPUT_TABLES

# One module per output table, named after it: the names come from the declaration.
MODULES: dict[str, ModuleType] = {name: importlib.import_module(f"runtime.star.{name}") for name in OUTPUT_TABLES}

SCHEMAS: dict[str, pdv.DataFrameSchema] = {name: m.SCHEMA for name, m in MODULES.items()}

# The Parquet schema of each output table, from the declaration of its columns.
ARROW_SCHEMAS: dict[str, pa.Schema] = {name: arrow_schema(name) for name in OUTPUT_TABLES}
