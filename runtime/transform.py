"""One source packet → the output tables it feeds, validated: the pure core.

No I/O here: the pipeline hands in the parsed blocks of a packet and the committed
dimension states, and gets back the Parquet bodies, the quarantine files, the
validation reports and the new state. Same inputs, same outputs, which is what makes a
retry safe.

Which source feeds which table, joined with what, referring to what, is the table
graph of runtime/tables.py; this module follows it and names no table itself.
Dimension packets are small and are remodelled whole. Fact packets can be millions of
rows, so they are remodelled block by block, each block's valid facts written as a
Parquet row group, and memory stays flat; what must hold across the whole packet (one
row per version, the dates dim_date needs, the key's timestamp) is carried from block
to block; the version screen is runtime/versions.py, the cross-packet fact memory
runtime/history.py.
The output sink, which streams row groups and accounts every line, is runtime/sink.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runtime import state as st
from runtime.history import FactMemory
from runtime.reading import ParsedPacket, concat
from runtime.sink import Candidate, Output, TableSink, Transformed, finish
from runtime.versions import Versions
from runtime.star import ARROW_SCHEMAS, MODULES, SCHEMAS, dim_date
from runtime.tables import (
    CALENDAR_TABLE,
    FACT_OF_SOURCE,
    OUTPUTS,
    SOURCES,
    WAITED_FOR,
    OutputTable,
    SourceTable,
)
from runtime.validation import (
    LINE,
    Failure,
    referential,
    validate,
    without_lines,
)

def transform(
    source: SourceTable,
    blocks: Iterable[ParsedPacket],
    states: Mapping[str, pa.Table],
    packet_name: str,
    memory: FactMemory | None = None,
    packet_id: int = 0,
    known: Mapping[str, pa.Array] | None = None,
) -> Transformed:
    """Remodel one packet (source packet `packet_id`), given as parsed blocks, against
    the committed states (and, for a fact source, the memory of the fact versions
    already written). `known`: the keys each dimension holds (emitted_keys of these
    states), when the caller has them already; computed here otherwise."""
    if source.keeps_state:
        return _dimension_packet(source, concat(source, list(blocks)), states, packet_name, known or {})
    memories = {source.name: memory or FactMemory.empty(source)}
    return _fact_packets({source.name: [(packet_id, blocks)]}, states, packet_name, memories, known)


def replay_facts(
    parts: Mapping[str, Iterable[tuple[int, Iterable[ParsedPacket]]]],
    states: Mapping[str, pa.Table],
    name: str,
    memories: Mapping[str, FactMemory],
    known: Mapping[str, pa.Array] | None = None,
) -> Transformed:
    """Waiting rows of several fact sources offered again, by fact source, each
    source's rows as (source packet, its blocks) in packet order
    (docs/design.md#waits-and-replays): one output per fact, one dim_date for all."""
    return _fact_packets(parts, states, name, memories, known)


# What callers read from here.
__all__ = ["Output", "Transformed", "emitted_keys", "replay_facts", "transform"]


# -- dimensions -----------------------------------------------------------------


def _dimension_packet(
    source: SourceTable, packet: ParsedPacket, states: Mapping[str, pa.Table], packet_name: str,
    known: Mapping[str, pa.Array],
) -> Transformed:
    """A dimension packet: its changed rows upserted into the state and emitted.

    A row rejected for its own values (docs/design.md#validation) never enters the
    state: the state keeps the last valid row of its key, and what the key's rows
    join is unchanged. A parent row (a department) is judged by the rows it re-emits:
    a re-emitted staff row that fails names its department row, which is rejected
    (once, as its own source row), not every staff member. Rows are taken out and the
    upsert redone until every row left passes (the row behind a rejected one may be
    the one to keep)."""
    plain = {name: st.plain(table) for name, table in states.items()}
    rejected: list[Failure] = []
    bad = np.empty(0, dtype=np.int64)
    while True:
        incoming = packet.rows
        if len(bad):
            incoming = incoming.filter(pc.invert(pc.is_in(incoming[LINE], value_set=pa.array(bad))))
        new_state, changed = st.upsert(plain[source.name], incoming, source.key)
        candidates = [_dimension_rows(OUTPUTS[t], source, changed, plain) for t in source.outputs]
        found = [f for t, c in zip(source.outputs, candidates) for f in _own_failures(source, OUTPUTS[t], c)]
        if not found:
            break
        rejected += found
        bad = np.unique(np.concatenate([bad, *(f.lines for f in found)]))
    sinks = []
    for table, candidate in zip(source.outputs, candidates):  # own outputs first, then re-emitted
        sink = TableSink(table)
        if table == source.primary_output:
            # Lines that never became rows count here, and so do rows older than the
            # state (skipped: nothing to emit) and rows rejected for their own values.
            # Lines are accounted where the rows are this source's own (a department's
            # rows are not dim_staff's, those are its staff: the reading accounts them).
            accounted = packet if OUTPUTS[table].source == source.name else None
            skipped = packet.rows.num_rows - changed.num_rows - len(bad)
            sink.add(candidate, packet.text, [*packet.failures, *rejected], skipped, accounted)
        else:
            sink.add(candidate, packet.text)
        sinks.append(sink)
    emitted = None
    if _feeds(source):  # what the dimension held before: the same keys, however computed
        held = known.get(source.primary_output)
        emitted = held if held is not None else emitted_keys(OUTPUTS[source.primary_output], plain)
    written = sinks[0].written_keys if _feeds(source) else None
    return finish(sinks, packet_name, st.with_emitted(new_state, states[source.name], source.key, emitted, written))


def _feeds(source: SourceTable) -> bool:
    """Whether `source` has a dimension of its own (a department has none)."""
    return OUTPUTS[source.primary_output].source == source.name


def _own_failures(source: SourceTable, out: OutputTable, candidate: Candidate) -> list[Failure]:
    """The checks the changed rows of `source` fail on their own values, as `out`'s
    candidate shows them (not a missing parent: such a row waits in the state for it).
    In a re-emitted row only the columns taken from the parent are the parent's: a
    staff row's own bad email is not its department's fault."""
    _, found = validate(SCHEMAS[candidate.table], without_lines(candidate.rows, candidate.failures))
    if out.source == source.name:
        return found
    childs = {name for name, _ in SOURCES[out.source].columns}
    return [f for f in found if f.column != "*" and f.column not in childs]


def _dimension_rows(
    out: OutputTable, source: SourceTable, changed: pa.Table, states: Mapping[str, pa.Table]
) -> Candidate:
    """The rows of dimension `out` that a packet of `source` emits, as declared in
    runtime/tables.py: its own changed rows, each joined with its parents from the state
    (an unknown parent quarantines the row, which stays in the state and is emitted
    when the parent arrives); or, when `source` is a parent, the rows joining a changed
    parent row, re-emitted."""
    build = MODULES[out.name].build
    if out.source == source.name:
        parents = [st.with_lines(states[j.parent]) for j in out.joins]
        unknown = (referential(changed, j.column, _keys(states, j.parent), j.parent) for j in out.joins)
        return Candidate(out.name, build(changed, *parents), tuple(f for f in unknown if f))
    [join] = [j for j in out.joins if j.parent == source.name]
    children = st.with_lines(states[out.source])
    affected = children.filter(pc.is_in(children[join.column], value_set=changed[source.key].combine_chunks()))
    parents = [changed if j.parent == source.name else st.with_lines(states[j.parent]) for j in out.joins]
    return Candidate(out.name, build(affected, *parents))


def _keys(states: Mapping[str, pa.Table], table: str) -> pa.Array:
    return states[table][SOURCES[table].key].combine_chunks()


def emitted_keys(out: OutputTable, states: Mapping[str, pa.Table]) -> pa.Array:
    """Keys of the rows dimension `out` holds (docs/design.md#validation): its source's
    state built and validated as the dimension would emit it, and every key the state
    remembers as emitted before. A new staff row whose department is unknown is in the
    state but not in the dimension, so a fact referring to it waits; an update of a
    staff member the dimension holds, waiting for its new department, holds no fact back."""
    parents = [st.with_lines(st.plain(states[j.parent])) for j in out.joins]
    candidate = MODULES[out.name].build(st.with_lines(st.plain(states[out.source])), *parents)
    valid, _ = validate(SCHEMAS[out.name], candidate)
    built = valid[ARROW_SCHEMAS[out.name].names[0]].combine_chunks()
    before = st.emitted_keys(states[out.source], SOURCES[out.source].key)
    return pa.concat_arrays([built, before.cast(built.type)]) if len(before) else built


# -- facts ----------------------------------------------------------------------


def _written_columns(fact: str):
    """Source rows -> the columns the warehouse holds of them: what a version's content
    is compared on (docs/design.md#fact-memory)."""
    build, names = MODULES[fact].build, ARROW_SCHEMAS[fact].names
    return lambda rows: build(rows).select(names)


def _fact_packets(
    parts: Mapping[str, Iterable[tuple[int, Iterable[ParsedPacket]]]],
    states: Mapping[str, pa.Table],
    packet_name: str,
    memories: Mapping[str, FactMemory],
    known_keys: Mapping[str, pa.Array] | None = None,
) -> Transformed:
    """The one fact path, for every fact declared in runtime/tables.py: each fact
    source's blocks → version screen → builder → reference checks → pandera → Parquet;
    then one dim_date holding every date the written facts refer to.

    One part for a packet; a replay offers the quarantined rows of several facts at once.
    """
    known: dict[str, pa.Array] = dict(known_keys or {})  # dimension → the keys a fact may refer to
    sinks, dates, updates = [], [], []
    for source_name, blocks_by_packet in parts.items():
        fact = FACT_OF_SOURCE[source_name]
        for ref in fact.references:
            if ref.dimension not in known:
                known[ref.dimension] = emitted_keys(OUTPUTS[ref.dimension], states)
        sink = TableSink(fact.name)
        sink.lines = 0  # it accounts the packet's lines, an empty packet's too
        versions = Versions(memories[source_name], _written_columns(fact.name))
        for packet_id, blocks in blocks_by_packet:
            versions.next_packet(packet_id)  # oldest first: a replay offers several
            for block in blocks:
                rows, duplicates, conflicts = versions.screen(block.rows)
                candidate = MODULES[fact.name].build(rows)
                unknown = (
                    referential(candidate, r.column, known[r.dimension], WAITED_FOR[r.dimension])
                    for r in fact.references
                )
                candidate = Candidate(fact.name, candidate, tuple(f for f in unknown if f), validate_waiting=True)
                valid = sink.add(candidate, block.text, list(block.failures) + conflicts, duplicates, block)
                versions.written(valid, sink.waiting)
                dates.append(dim_date.referenced_dates(valid, fact.dates))
        sinks.append(sink)
        updates.append(versions.update())
    calendar = TableSink(CALENDAR_TABLE)
    written = [s for s in sinks if s.rows_written]
    if written:
        # Every date the written facts refer to, so the loader's foreign keys hold.
        all_dates = pc.unique(pa.chunked_array(dates, pa.date32()).combine_chunks())
        updated = max(s.updated for s in written)
        calendar.add(Candidate(CALENDAR_TABLE, dim_date.build(all_dates, updated)), None)
    return finish(sinks + [calendar], packet_name, None, tuple(updates))
