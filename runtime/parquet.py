"""Arrow table ↔ Parquet bytes, in memory. Deterministic: the same table gives the
same bytes, so a retry recomputes the same sha256 and its conditional put is a no-op."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq


def to_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))
