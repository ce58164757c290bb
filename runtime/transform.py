"""One source packet → the output tables it feeds, validated: the pure core.

No I/O here: the pipeline hands in the parsed packet and the committed dimension
states, and gets back the output rows, the quarantine files, the validation reports
and the new state. Same inputs, same outputs, which is what makes a retry safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from runtime import state as st
from runtime.reading import LINE, ParsedPacket
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
    """Valid rows of one output table, ready to write."""

    table: str
    rows: pa.Table  # exactly the DDL schema
    updated: datetime  # latest last_updated of the source rows behind it: the key's ts


@dataclass(frozen=True)
class Transformed:
    outputs: tuple[Output, ...]  # non-empty ones, in OUTPUT_TABLES order
    reports: tuple[TableReport, ...]
    quarantine: dict[str, bytes]  # output table → JSON lines of rejected source rows
    state: pa.Table | None  # the source's new state, for dimension sources

    @property
    def rows_rejected(self) -> dict[str, int]:
        return {r.table: r.rows_rejected for r in self.reports}


@dataclass(frozen=True)
class _Candidate:
    table: str
    rows: pa.Table  # schema columns + __line + __updated
    failures: tuple[Failure, ...] = ()  # found before pandera (references)


def transform(
    source: SourceTable, packet: ParsedPacket, states: Mapping[str, pa.Table], packet_name: str
) -> Transformed:
    """Remodel one parsed packet against the committed states."""
    rows = packet.rows
    new_state = None
    skipped = 0
    if source.keeps_state:
        new_state, changed = st.upsert(states[source.name], rows, source.key)
        skipped = rows.num_rows - changed.num_rows
        candidates = _DIMENSIONS[source.name](changed, states)
    else:
        candidates, skipped = _facts(rows, states)

    outputs, reports, quarantine = [], [], {}
    valid_facts = None
    for candidate in candidates:
        if candidate.table == "dim_date":
            candidate = _Candidate("dim_date", dim_date.build(valid_facts))
        checked = without_lines(candidate.rows, candidate.failures)
        valid, failures = validate(SCHEMAS[candidate.table], checked)
        failures = list(candidate.failures) + failures
        rejected_rows = candidate.rows.num_rows - valid.num_rows
        if candidate.table == source.primary_output:
            # Lines that never became rows (broken, unrepresentable) count here.
            failures = list(packet.failures) + failures
            rejected_rows += len({int(i) for f in packet.failures for i in f.lines})
        if candidate.table == "fact_sales_order":
            valid_facts = valid
        reports.append(
            TableReport(
                table=candidate.table,
                source_packet=packet_name,
                rows_in=valid.num_rows + rejected_rows + (skipped if candidate.table == source.primary_output else 0),
                rows_written=valid.num_rows,
                rows_rejected=rejected_rows,
                rows_skipped=skipped if candidate.table == source.primary_output else 0,
                failures=tuple(failures),
            )
        )
        if failures:
            quarantine[candidate.table] = quarantine_jsonl(packet.text.lines, failures)
        if valid.num_rows:
            schema = ARROW_SCHEMAS[candidate.table]
            outputs.append(
                Output(
                    candidate.table,
                    valid.select(schema.names).cast(schema),
                    pc.max(valid[UPDATED]).as_py(),
                )
            )
    outputs.sort(key=lambda o: OUTPUT_TABLES.index(o.table))
    return Transformed(tuple(outputs), tuple(reports), quarantine, new_state)


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


def _facts(rows: pa.Table, states: Mapping[str, pa.Table]) -> tuple[list[_Candidate], int]:
    """Facts, with every dimension they refer to checked against the committed states."""
    facts = fact_sales_order.build(rows)
    duplicates = rows.num_rows - facts.num_rows
    emittable = {
        "staff": _emittable(states, "staff", "staff_id", "department_id", "department", "department_id"),
        "counterparty": _emittable(
            states, "counterparty", "counterparty_id", "legal_address_id", "address", "address_id"
        ),
        "currency": _keys(states, "currency", "currency_id"),
        "design": _keys(states, "design", "design_id"),
        "address": _keys(states, "address", "address_id"),
    }
    failures = []
    for column, dimension in fact_sales_order.REFERENCES:
        failure = referential(facts, column, emittable[dimension], dimension)
        if failure is not None:
            failures.append(failure)
    return [
        _Candidate("fact_sales_order", facts, tuple(failures)),
        _Candidate("dim_date", facts),  # rebuilt from the valid facts in transform()
    ], duplicates


def _emittable(states, table: str, key: str, ref: str, parent: str, parent_key: str) -> pa.Array:
    """Keys of `table` rows that are in dim output: those whose `ref` parent is known."""
    rows = states[table]
    known = pc.is_in(rows[ref], value_set=_keys(states, parent, parent_key))
    return rows.filter(pc.fill_null(known, False))[key].combine_chunks()


_DIMENSIONS = {
    "currency": _currency,
    "design": _design,
    "address": _address,
    "department": _department,
    "counterparty": _counterparty,
    "staff": _staff,
}
