"""Where a packet's rows go (docs/design.md#validation, #line-screen): one sink per output
table takes candidate rows block by block, validates them (pandera), streams the valid
ones as Parquet row groups, keeps the rejected ones as quarantine lines and accounts
the lines of the blocks it took, so its report can check that lines = written +
rejected + skipped + blank (runtime.validation.check_lines, the one check).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runtime.reading import ParsedPacket
from runtime.star import ARROW_SCHEMAS, SCHEMAS
from runtime.tables import OUTPUT_TABLES
from runtime.validation import (
    UPDATED,
    Failure,
    TableReport,
    quarantine_jsonl,
    validate,
    waiting_lines,
    without_lines,
)
from runtime.versions import HistoryUpdate


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
    history: tuple[HistoryUpdate, ...] = ()  # facts: what the packet did to each fact memory


@dataclass(frozen=True)
class Candidate:
    table: str
    rows: pa.Table  # schema columns + __line + __updated
    failures: tuple[Failure, ...] = ()  # found before pandera (references, versions)
    # Facts: rows waiting for a key are validated too, so a row that needs a fix at
    # the source is rejected at once, not kept waiting (a dimension row waiting for its
    # parent lacks the parent's columns: it is validated when the parent comes).
    validate_waiting: bool = False



class TableSink:
    """One output table of one packet: its valid rows as Parquet row groups, its
    failures and quarantine lines, its counts."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.schema = ARROW_SCHEMAS[table]
        self._parquet = io.BytesIO()
        self._writer: pq.ParquetWriter | None = None
        self.rows_in = self.rows_written = self.rows_rejected = self.rows_skipped = self.rows_waiting = 0
        self.failures: list[Failure] = []
        self.lines: int | None = None  # source lines accounted here (docs/design.md#line-screen)
        self.blank = 0
        self._quarantine: list[bytes] = []
        self.updated: datetime | None = None
        self._keys: list[pa.ChunkedArray] = []  # the first (key) column of the rows written
        self.waiting = np.empty(0, dtype=np.int64)

    def add(
        self,
        candidate: Candidate,
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
        if candidate.validate_waiting:
            valid, found = validate(SCHEMAS[self.table], candidate.rows)
            valid = without_lines(valid, candidate.failures)
        else:
            valid, found = validate(SCHEMAS[self.table], without_lines(candidate.rows, candidate.failures))
        failures = before + list(candidate.failures) + found
        rejected = candidate.rows.num_rows - valid.num_rows + _distinct_lines(before)
        self.waiting = waiting_lines(failures)  # the lines of this batch that wait
        self.rows_waiting += len(self.waiting)
        self.rows_in += valid.num_rows + rejected + skipped
        self.rows_written += valid.num_rows
        self.rows_rejected += rejected
        self.rows_skipped += skipped
        if source is not None:  # its lines, checked on the report (validation.check_lines)
            self.lines = (self.lines or 0) + source.lines
            self.blank += source.blank
        if failures:
            self.failures.extend(failures)
            self._quarantine.append(quarantine_jsonl(text.lines, failures))
        if valid.num_rows:
            self._keys.append(valid[self.schema.names[0]])
            if self._writer is None:
                # The key (the first column) holds about one value per row: a dictionary
                # of it costs time and bytes (on 300k sales orders, without it the write
                # takes 22% less CPU and the file is 8% smaller).
                self._writer = pq.ParquetWriter(
                    self._parquet, self.schema, compression="snappy", use_dictionary=self.schema.names[1:]
                )
            self._writer.write_table(valid.select(self.schema.names).cast(self.schema))
            latest = pc.max(valid[UPDATED]).as_py()
            self.updated = latest if self.updated is None else max(self.updated, latest)
        return valid

    @property
    def written_keys(self) -> pa.Array:
        if not self._keys:
            return pa.array([], self.schema.field(0).type)
        return pa.chunked_array(self._keys).combine_chunks().cast(self.schema.field(0).type)

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
            rows_waiting=self.rows_waiting,
            lines=self.lines,
            blank=self.blank,
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


def finish(
    sinks: list[TableSink], packet_name: str, state: pa.Table | None, history: tuple[HistoryUpdate, ...] = ()
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


