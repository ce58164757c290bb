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
# Whether the dimension has emitted the key at some time (docs/design.md#validation):
# then a fact referring to it never waits, even while the key's newest row waits for
# its own parent. Kept in the snapshot beside the source columns.
EMITTED = "__emitted"


def plain(state: pa.Table) -> pa.Table:
    """The state's source columns only (what joins and builders read)."""
    return state.drop_columns([EMITTED]) if EMITTED in state.column_names else state


def emitted_keys(state: pa.Table, key: str) -> pa.Array:
    """The keys the state remembers as emitted (none for a snapshot written before)."""
    if EMITTED not in state.column_names:
        return pa.array([], pa.int64())
    return state[key].filter(state[EMITTED]).combine_chunks()


def with_emitted(
    new_state: pa.Table, old_state: pa.Table, key: str, held: pa.Array | None, written: pa.Array | None
) -> pa.Table:
    """`new_state` with each key's EMITTED flag: remembered before, held by the dimension
    before this packet (`held`), or written by it. None: the source has no dimension of
    its own (a department), nothing to remember."""
    if held is None or written is None:
        return new_state
    known = pa.concat_arrays([emitted_keys(old_state, key).cast(pa.int64()), held.cast(pa.int64()),
                              written.cast(pa.int64())])
    flags = pc.fill_null(pc.is_in(new_state[key].cast(pa.int64()), value_set=known), False)
    return new_state.append_column(EMITTED, flags)


def loaded(snapshot: pa.Table, schema: pa.Schema) -> pa.Table:
    """A snapshot read back: the source columns as `schema`, the EMITTED flag if kept."""
    state = snapshot.select(schema.names).cast(schema)
    if EMITTED in snapshot.column_names:
        state = state.append_column(EMITTED, snapshot[EMITTED].cast(pa.bool_()))
    return state


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
