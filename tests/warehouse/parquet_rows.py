"""What the processed bucket holds, read straight from its Parquet (no warehouse in
between), to hold the loaded warehouse and the analysts' answers against."""

from __future__ import annotations

import io
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from sandbox.warehouse import output_packets


def packets(store, table: str) -> list[pa.Table]:
    """The table's output files, in packet order."""
    found = output_packets(store, [table])[table]
    return [pq.read_table(io.BytesIO(store.read(found[n]))) for n in sorted(found)]


def rows(store, table: str) -> list[dict]:
    """Every row of every packet, in packet order."""
    return [row for part in packets(store, table) for row in part.to_pylist()]


def dimension(store, table: str, key: str) -> dict:
    """key → row, the later packet winning (an upsert by key)."""
    return {row[key]: row for row in rows(store, table)}


def multiset(rows_: list[dict], columns: list[str]) -> Counter:
    return Counter(tuple(row[c] for c in columns) for row in rows_)
