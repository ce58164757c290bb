"""One source packet → the output tables it feeds, validated: the pure core.

No I/O here: the pipeline hands in the parsed blocks of a packet and the committed
dimension states, and gets back the Parquet bodies, the quarantine files, the
validation reports and the new state. Same inputs, same outputs, which is what makes a
retry safe.

Dimension packets are small and are remodelled whole. Sales order packets can be
millions of rows, so they are remodelled block by block, each block's valid facts
written as a Parquet row group, and memory stays flat; what must hold across the
whole packet (one row per order version, the dates dim_date needs, the key's
timestamp) is carried from block to block.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runtime import state as st
from runtime.history import FactMemory, HistoryUpdate, Versions, row_hashes  # noqa: F401 (row_hashes: re-exported)
from runtime.reading import LINE, ParsedPacket, concat
from runtime.star import (
    ARROW_SCHEMAS,
    SCHEMAS,
    dim_counterparty,
    dim_currency,
    dim_date,
    dim_design,
    dim_location,
    dim_staff,
    fact_sales_order,
)
from runtime.tables import OUTPUT_TABLES, SourceTable
from runtime.validation import (
    UPDATED,
    Failure,
    TableReport,
    examples,
    quarantine_jsonl,
    referential,
    validate,
    without_lines,
)

# The committed states each source's transform reads (its own first, when it has one).
STATE_INPUTS: dict[str, tuple[str, ...]] = {
    "currency": ("currency",),
    "design": ("design",),
    "address": ("address", "counterparty"),
    "department": ("department", "staff"),
    "counterparty": ("counterparty", "address"),
    "staff": ("staff", "department"),
    "sales_order": ("staff", "department", "counterparty", "address", "currency", "design"),
}


@dataclass(frozen=True)
class Output:
    """Valid rows of one output table, as the Parquet object to write."""

    table: str
    body: bytes  # Parquet, exactly the DDL schema
    rows: int
    updated: datetime  # latest last_updated of the source rows behind it: the key's ts


@dataclass(frozen=True)
class Transformed:
    outputs: tuple[Output, ...]  # non-empty ones, in OUTPUT_TABLES order
    reports: tuple[TableReport, ...]
    quarantine: dict[str, bytes]  # output table → JSON lines of rejected source rows
    state: pa.Table | None  # the source's new state, for dimension sources
    history: HistoryUpdate | None = None  # fact sources: what the packet did to the fact memory


@dataclass(frozen=True)
class _Candidate:
    table: str
    rows: pa.Table  # schema columns + __line + __updated
    failures: tuple[Failure, ...] = ()  # found before pandera (references, versions)


def transform(
    source: SourceTable,
    blocks: Iterable[ParsedPacket],
    states: Mapping[str, pa.Table],
    packet_name: str,
    memory: FactMemory | None = None,
) -> Transformed:
    """Remodel one packet, given as parsed blocks, against the committed states (and,
    for a fact source, the memory of the fact versions already written)."""
    if source.keeps_state:
        return _dimension_packet(source, concat(source, list(blocks)), states, packet_name)
    return _fact_packet(blocks, states, packet_name, memory or FactMemory.empty(source))


class _TableSink:
    """One output table of one packet: its valid rows as Parquet row groups, its
    failures and quarantine lines, its counts."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.schema = ARROW_SCHEMAS[table]
        self._parquet = io.BytesIO()
        self._writer: pq.ParquetWriter | None = None
        self.rows_in = self.rows_written = self.rows_rejected = self.rows_skipped = 0
        self.failures: list[Failure] = []
        self._quarantine: list[bytes] = []
        self.updated: datetime | None = None

    def add(
        self,
        candidate: _Candidate,
        text,
        before: Iterable[Failure] = (),
        skipped: int = 0,
    ) -> pa.Table:
        """Validate a candidate batch, write its valid rows; returns them.

        `before` are failures of source lines that never became candidates (broken,
        unrepresentable, a conflicting version): they count and are quarantined here.
        """
        before = list(before)
        checked = without_lines(candidate.rows, candidate.failures)
        valid, found = validate(SCHEMAS[self.table], checked)
        failures = before + list(candidate.failures) + found
        rejected = candidate.rows.num_rows - valid.num_rows + _distinct_lines(before)
        self.rows_in += valid.num_rows + rejected + skipped
        self.rows_written += valid.num_rows
        self.rows_rejected += rejected
        self.rows_skipped += skipped
        if failures:
            self.failures.extend(failures)
            self._quarantine.append(quarantine_jsonl(text.lines, failures))
        if valid.num_rows:
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._parquet, self.schema, compression="snappy")
            self._writer.write_table(valid.select(self.schema.names).cast(self.schema))
            latest = pc.max(valid[UPDATED]).as_py()
            self.updated = latest if self.updated is None else max(self.updated, latest)
        return valid

    def finish(self, packet_name: str) -> tuple[Output | None, TableReport, bytes]:
        output = None
        if self._writer is not None:
            self._writer.close()
            output = Output(self.table, self._parquet.getvalue(), self.rows_written, self.updated)
        report = TableReport(
            table=self.table,
            source_packet=packet_name,
            rows_in=self.rows_in,
            rows_written=self.rows_written,
            rows_rejected=self.rows_rejected,
            rows_skipped=self.rows_skipped,
            failures=_merged(self.failures),
        )
        return output, report, b"".join(self._quarantine)


def _distinct_lines(failures: list[Failure]) -> int:
    if not failures:
        return 0
    return len(np.unique(np.concatenate([f.lines for f in failures])))


def _merged(failures: list[Failure]) -> tuple[Failure, ...]:
    """One failure per (column, check) across blocks, for the report."""
    groups: dict[tuple[str, str], list[Failure]] = {}
    for failure in failures:
        groups.setdefault((failure.column, failure.check), []).append(failure)
    merged = []
    for (column, check), group in sorted(groups.items()):
        lines = np.concatenate([f.lines for f in group])
        found = [e for f in group for e in f.examples]
        merged.append(Failure(column, check, lines, tuple(found[:3])))
    return tuple(merged)


def _finish(
    sinks: list[_TableSink], packet_name: str, state: pa.Table | None, history: HistoryUpdate | None = None
) -> Transformed:
    outputs, reports, quarantine = [], [], {}
    for sink in sinks:
        output, report, lines = sink.finish(packet_name)
        reports.append(report)
        if output is not None:
            outputs.append(output)
        if lines:
            quarantine[sink.table] = lines
    outputs.sort(key=lambda o: OUTPUT_TABLES.index(o.table))
    return Transformed(tuple(outputs), tuple(reports), quarantine, state, history)


# -- dimensions -----------------------------------------------------------------


def _dimension_packet(
    source: SourceTable, packet: ParsedPacket, states: Mapping[str, pa.Table], packet_name: str
) -> Transformed:
    new_state, changed = st.upsert(states[source.name], packet.rows, source.key)
    sinks = []
    for candidate in _DIMENSIONS[source.name](changed, states):
        sink = _TableSink(candidate.table)
        if candidate.table == source.primary_output:
            # Lines that never became rows count here, and so do rows older than the
            # state (skipped: nothing to emit).
            sink.add(candidate, packet.text, packet.failures, packet.rows.num_rows - changed.num_rows)
        else:
            sink.add(candidate, packet.text)
        sinks.append(sink)
    return _finish(sinks, packet_name, new_state)


def _keys(states: Mapping[str, pa.Table], table: str, key: str) -> pa.Array:
    return states[table][key].combine_chunks()


def _currency(changed: pa.Table, states) -> list[_Candidate]:
    return [_Candidate("dim_currency", dim_currency.build(changed))]


def _design(changed: pa.Table, states) -> list[_Candidate]:
    return [_Candidate("dim_design", dim_design.build(changed))]


def _address(changed: pa.Table, states) -> list[_Candidate]:
    """New or changed addresses, and the counterparties whose legal address they are."""
    counterparties = st.with_lines(states["counterparty"])
    moved = counterparties.filter(
        pc.is_in(counterparties["legal_address_id"], value_set=changed["address_id"].combine_chunks())
    )
    return [
        _Candidate("dim_location", dim_location.build(changed)),
        _Candidate("dim_counterparty", dim_counterparty.build(moved, changed)),
    ]


def _department(changed: pa.Table, states) -> list[_Candidate]:
    """A department change re-emits the dim_staff rows of its staff."""
    staff = st.with_lines(states["staff"])
    affected = staff.filter(
        pc.is_in(staff["department_id"], value_set=changed["department_id"].combine_chunks())
    )
    return [_Candidate("dim_staff", dim_staff.build(affected, changed))]


def _counterparty(changed: pa.Table, states) -> list[_Candidate]:
    unknown = referential(changed, "legal_address_id", _keys(states, "address", "address_id"), "address")
    rows = dim_counterparty.build(changed, st.with_lines(states["address"]))
    return [_Candidate("dim_counterparty", rows, _some(unknown))]


def _staff(changed: pa.Table, states) -> list[_Candidate]:
    unknown = referential(
        changed, "department_id", _keys(states, "department", "department_id"), "department"
    )
    rows = dim_staff.build(changed, st.with_lines(states["department"]))
    return [_Candidate("dim_staff", rows, _some(unknown))]


def _some(failure: Failure | None) -> tuple[Failure, ...]:
    return () if failure is None else (failure,)


_DIMENSIONS = {
    "currency": _currency,
    "design": _design,
    "address": _address,
    "department": _department,
    "counterparty": _counterparty,
    "staff": _staff,
}


# -- facts ----------------------------------------------------------------------


def _fact_packet(
    blocks: Iterable[ParsedPacket], states: Mapping[str, pa.Table], packet_name: str, memory: FactMemory
) -> Transformed:
    known = {
        "staff": _emittable(states, "staff", "staff_id", "department_id", "department", "department_id"),
        "counterparty": _emittable(
            states, "counterparty", "counterparty_id", "legal_address_id", "address", "address_id"
        ),
        "currency": _keys(states, "currency", "currency_id"),
        "design": _keys(states, "design", "design_id"),
        "address": _keys(states, "address", "address_id"),
    }
    facts = _TableSink("fact_sales_order")
    versions = Versions(memory)
    dates: list[pa.Array] = []
    for block in blocks:
        rows, duplicates, conflicts = versions.screen(block.rows)
        candidate = fact_sales_order.build(rows)
        failures = [referential(candidate, col, known[dim], dim) for col, dim in fact_sales_order.REFERENCES]
        candidate = _Candidate("fact_sales_order", candidate, tuple(f for f in failures if f))
        valid = facts.add(candidate, block.text, list(block.failures) + conflicts, duplicates)
        versions.written(valid)
        dates.append(dim_date.referenced_dates(valid))
    dim = _TableSink("dim_date")
    if facts.rows_written:
        # Every date the written facts refer to, so the loader's foreign keys hold.
        all_dates = pc.unique(pa.chunked_array(dates, pa.date32()).combine_chunks())
        dim.add(_Candidate("dim_date", dim_date.build(all_dates, facts.updated)), None)
    return _finish([facts, dim], packet_name, None, versions.update())


def _emittable(states, table: str, key: str, ref: str, parent: str, parent_key: str) -> pa.Array:
    """Keys of `table` rows that are in the dim output: those whose parent is known."""
    rows = states[table]
    known = pc.is_in(rows[ref], value_set=_keys(states, parent, parent_key))
    return rows.filter(pc.fill_null(known, False))[key].combine_chunks()
