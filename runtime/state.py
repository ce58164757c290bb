"""Dimension state: the latest row per key of each dimension source table.

The state is what joins and re-emission need (a department change re-emits its staff),
kept as immutable Parquet snapshots under `_state/`. Pure: tables in, tables out.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runtime.reading import LINE, coerced_schema
from runtime.tables import SourceTable

_ORIGIN = "__incoming"


def empty(source: SourceTable) -> pa.Table:
    return coerced_schema(source).empty_table()


def with_lines(state: pa.Table) -> pa.Table:
    """State rows in the shape of incoming rows: no source line in this packet."""
    return state.append_column(LINE, pa.nulls(state.num_rows, pa.int64()))


def upsert(state: pa.Table, incoming: pa.Table, key: str) -> tuple[pa.Table, pa.Table]:
    """Merge incoming rows into the state, latest `last_updated` per key winning.

    On equal `last_updated` the incoming row wins (and among incoming rows, the later
    line). Returns (new state, the incoming rows that won: the changed rows to emit).
    An incoming row older than the state's is not emitted.
    """
    combined = pa.concat_tables(
        [
            with_lines(state).append_column(_ORIGIN, pa.repeat(False, state.num_rows)),
            incoming.append_column(_ORIGIN, pa.repeat(True, incoming.num_rows)),
        ]
    )
    order = pc.sort_indices(
        combined,
        sort_keys=[
            (key, "ascending", "at_start"),
            ("last_updated", "ascending", "at_start"),
            (_ORIGIN, "ascending", "at_start"),
            (LINE, "ascending", "at_start"),  # state rows have no line: before incoming
        ],
    )
    ranked = combined.take(order)
    keys = ranked[key].to_numpy()
    is_last = np.ones(len(keys), dtype=bool)
    is_last[:-1] = keys[:-1] != keys[1:]
    winners = ranked.filter(pa.array(is_last))
    new_state = winners.drop_columns([LINE, _ORIGIN])
    changed = winners.filter(winners[_ORIGIN]).drop_columns([_ORIGIN])
    return new_state, changed
