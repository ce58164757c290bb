"""The audit timestamps every fact row carries, split as the DDL wants them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def split_timestamp(ts: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """timestamp[us] → (date32, time64[us]), vectorized, correct before 1970 too."""
    day = pc.floor_temporal(ts, unit="day")
    time_of_day = pc.subtract(pc.cast(ts, pa.int64()), pc.cast(day, pa.int64()))
    return pc.cast(day, pa.date32()), pc.cast(time_of_day, pa.time64("us"))


def audit_columns(rows: pa.Table) -> dict[str, pa.ChunkedArray]:
    """created_at / last_updated → created_date, created_time, last_updated_date,
    last_updated_time."""
    created_date, created_time = split_timestamp(rows["created_at"])
    updated_date, updated_time = split_timestamp(rows["last_updated"])
    return {
        "created_date": created_date,
        "created_time": created_time,
        "last_updated_date": updated_date,
        "last_updated_time": updated_time,
    }
