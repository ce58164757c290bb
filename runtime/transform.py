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
    check_lines,
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
) -> Transformed:
    """Remodel one packet, given as parsed blocks, against the committed states."""
    if source.keeps_state:
        return _dimension_packet(source, concat(source, list(blocks)), states, packet_name)
    return _fact_packet(blocks, states, packet_name)


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
        self.lines: int | None = None  # source lines accounted here (DESIGN §7b)
        self.blank = 0
        self._quarantine: list[bytes] = []
        self.updated: datetime | None = None

    def add(
        self,
        candidate: _Candidate,
        text,
        before: Iterable[Failure] = (),
        skipped: int = 0,
        source: ParsedPacket | None = None,
    ) -> pa.Table:
        """Validate a candidate batch, write its valid rows; returns them.

        `before` are failures of source lines that never became candidates (broken,
        unrepresentable, a conflicting version): they count and are quarantined here.
        `source`, when the candidates are that block's own rows, is accounted line by
        line: each of its lines written, rejected, skipped or blank, exactly once.
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
        if source is not None:
            check_lines(f"{self.table} from {_text_key(source)}", source.lines, valid.num_rows,
                        rejected, skipped, source.blank)
            self.lines = (self.lines or 0) + source.lines
            self.blank += source.blank
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
            lines=self.lines,
            blank=self.blank,
        )
        return output, report, b"".join(self._quarantine)


def _text_key(packet: ParsedPacket) -> str:
    blocks = packet.text.blocks if hasattr(packet.text, "blocks") else (packet.text,)
    return ", ".join(sorted({b.key for b in blocks})) or "no objects"


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


def _finish(sinks: list[_TableSink], packet_name: str, state: pa.Table | None) -> Transformed:
    outputs, reports, quarantine = [], [], {}
    for sink in sinks:
        output, report, lines = sink.finish(packet_name)
        reports.append(report)
        if output is not None:
            outputs.append(output)
        if lines:
            quarantine[sink.table] = lines
    outputs.sort(key=lambda o: OUTPUT_TABLES.index(o.table))
    return Transformed(tuple(outputs), tuple(reports), quarantine, state)


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
            # A department's rows are not dim_staff's (those are its staff): its lines
            # are accounted by the reading only.
            accounted = packet if source.name != "department" else None
            sink.add(candidate, packet.text, packet.failures, packet.rows.num_rows - changed.num_rows, accounted)
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
    blocks: Iterable[ParsedPacket], states: Mapping[str, pa.Table], packet_name: str
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
    facts.lines = 0  # it accounts the packet's lines, an empty packet's too
    versions = _Versions()
    dates: list[pa.Array] = []
    for block in blocks:
        rows, duplicates, conflicts = versions.screen(block.rows)
        candidate = fact_sales_order.build(rows)
        failures = [referential(candidate, col, known[dim], dim) for col, dim in fact_sales_order.REFERENCES]
        candidate = _Candidate("fact_sales_order", candidate, tuple(f for f in failures if f))
        valid = facts.add(candidate, block.text, list(block.failures) + conflicts, duplicates, block)
        dates.append(dim_date.referenced_dates(valid))
    dim = _TableSink("dim_date")
    if facts.rows_written:
        # Every date the written facts refer to, so the loader's foreign keys hold.
        all_dates = pc.unique(pa.chunked_array(dates, pa.date32()).combine_chunks())
        dim.add(_Candidate("dim_date", dim_date.build(all_dates, facts.updated)), None)
    return _finish([facts, dim], packet_name, None)


def _emittable(states, table: str, key: str, ref: str, parent: str, parent_key: str) -> pa.Array:
    """Keys of `table` rows that are in the dim output: those whose parent is known."""
    rows = states[table]
    known = pc.is_in(rows[ref], value_set=_keys(states, parent, parent_key))
    return rows.filter(pc.fill_null(known, False))[key].combine_chunks()


class _Versions:
    """One row per order version (sales_order_id, last_updated) across the packet.

    The first row of a version is kept; a later identical row is an exact duplicate,
    written once (skipped); a later row that differs is a conflict, rejected. Carried
    across blocks as (version, content hash) of the kept rows, so processing a packet
    in blocks gives the same result as processing it whole.
    """

    _KEY = ["sales_order_id", "last_updated"]

    def __init__(self) -> None:
        self._seen: list[pa.Table] = []  # sales_order_id, last_updated, __hash
        # Hashes of every kept version, sorted: a quick, exact "certainly new" test
        # (different hashes mean different versions); a match is checked exactly.
        self._version_hashes = np.empty(0, dtype=np.uint64)

    def screen(self, rows: pa.Table) -> tuple[pa.Table, int, list[Failure]]:
        """(rows to keep, how many were exact duplicates, the conflicting rows' failure)."""
        if rows.num_rows == 0:
            return rows, 0, []
        block = rows.select(self._KEY + [LINE]).append_column(
            "__hash", pa.array(row_hashes(rows.drop_columns([LINE])))
        )
        versions = np.sort(row_hashes(rows.select(self._KEY)))
        repeated = bool(len(versions) > 1 and (versions[1:] == versions[:-1]).any())
        if not repeated and not self._maybe_seen(versions):
            # The common case: every version is new and appears once.
            self._remember(block, versions)
            return rows, 0, []
        counts = block.group_by(self._KEY, use_threads=False).aggregate([(LINE, "min"), (LINE, "count")])
        return self._screen_slowly(rows, block, counts, self._seen_of(counts.select(self._KEY)))

    def _maybe_seen(self, sorted_hashes: np.ndarray) -> bool:
        known = self._version_hashes
        if not len(known):
            return False
        at = np.minimum(np.searchsorted(known, sorted_hashes), len(known) - 1)
        return bool((known[at] == sorted_hashes).any())

    def _remember(self, kept: pa.Table, sorted_hashes: np.ndarray) -> None:
        self._seen.append(kept.select(self._KEY + ["__hash"]))
        # Two sorted runs: a stable sort merges them in linear time.
        self._version_hashes = np.sort(np.concatenate([self._version_hashes, sorted_hashes]), kind="stable")

    def _seen_of(self, versions: pa.Table) -> pa.Table:
        """The (version, hash) of earlier blocks' rows for these versions."""
        if not self._seen:
            return pa.table({"sales_order_id": pa.array([], pa.int32()),
                             "last_updated": pa.array([], pa.timestamp("us")),
                             "__hash": pa.array([], pa.uint64())})
        # The block's versions are the (small) build side; earlier rows are probed.
        return pa.concat_tables(self._seen).join(versions, self._KEY, join_type="left semi")

    def _screen_slowly(
        self, rows: pa.Table, block: pa.Table, counts: pa.Table, seen: pa.Table
    ) -> tuple[pa.Table, int, list[Failure]]:
        first = counts.select(self._KEY + [f"{LINE}_min"]).join(
            block.select([LINE, "__hash"]), f"{LINE}_min", LINE, join_type="inner"
        )
        first = first.rename_columns(["sales_order_id", "last_updated", "__first_line", "__first_hash"])
        seen = seen.rename_columns(["sales_order_id", "last_updated", "__seen_hash"])
        first = first.join(seen, self._KEY, join_type="left outer")
        screened = block.join(first, self._KEY, join_type="inner").sort_by(LINE)
        reference = pc.coalesce(screened["__seen_hash"], screened["__first_hash"])
        differs = pc.not_equal(screened["__hash"], reference)
        keep = pc.and_(pc.is_null(screened["__seen_hash"]), pc.equal(screened[LINE], screened["__first_line"]))
        kept_versions = screened.filter(keep)
        self._remember(kept_versions, np.sort(row_hashes(kept_versions.select(self._KEY))))
        conflicts = []
        if pc.any(differs).as_py():
            conflicts.append(
                Failure(
                    column="sales_order_id",
                    check="one row per version (sales_order_id, last_updated): "
                    "a different row for this version came first",
                    lines=screened[LINE].filter(differs).to_numpy(),
                    examples=examples(screened["sales_order_id"].filter(differs)),
                )
            )
        kept = rows.filter(pc.is_in(rows[LINE], value_set=screened[LINE].filter(keep).combine_chunks()))
        duplicates = rows.num_rows - kept.num_rows - (conflicts[0].count if conflicts else 0)
        return kept, duplicates, conflicts


def row_hashes(table: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row's content, vectorized over the columns' buffers.

    Used only to tell an exact duplicate from a conflicting row of the same order
    version; sales order columns are all fixed-width (ints, dates, timestamps,
    decimals), which is what this reads.
    """
    h = np.full(table.num_rows, 0x9E3779B97F4A7C15, dtype=np.uint64)
    for column in table.itercolumns():
        for words in _words(column.combine_chunks()):
            h = _mix(h ^ words)
    return h


def _words(arr: pa.Array) -> list[np.ndarray]:
    width = arr.type.byte_width  # ValueError for variable-width types: not expected here
    raw = np.frombuffer(arr.buffers()[1], dtype=np.uint8)[arr.offset * width : (arr.offset + len(arr)) * width]
    if width == 16:
        pairs = raw.view("<u8").reshape(-1, 2)
        words = [pairs[:, 0], pairs[:, 1]]
    else:
        words = [raw.view(f"<u{width}").astype(np.uint64)]
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    # A null's buffer slot holds anything: hash it as a fixed marker instead.
    return [np.where(nulls, np.uint64(0xA5A5A5A5A5A5A5A5), w) for w in words]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit affects every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
