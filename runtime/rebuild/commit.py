"""The rebuild's ordered commit: staged fact packets committed one after another,
through the one commit path (runtime.pipeline's commit steps, docs/design.md#commit-steps).

No parsing here. For each fact packet, in the plan's order, the compute handed to the
commit steps takes the staged rows and applies the fact memory committed so far, as the
live screen would have: a version already written with the same content is a re-send
(dropped, counted as skipped), with other content a silent mutation (written, reported).
Then dim_date is built from the rows that remain, and the commit steps number, write and
record them exactly as for a live packet, so numbers are gapless, a killed commit is
finished by the next call from its commit record, and `consumed` is the cursor.

One case is computed the live way instead (reading the packet again): a packet where one
version came on several lines, when the memory already holds versions of this fact; the
order of the memory's screen and the packet's own then matters (docs/design.md#fact-memory).
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runtime.history import HASH, UPDATED
from runtime.pipeline import Pipeline
from runtime.ports import ProcessedStore
from runtime.rebuild.plan import REBUILD
from runtime.rebuild.staging import StagedItem
from runtime.records import PacketLines
from runtime.star import ARROW_SCHEMAS, dim_date
from runtime.tables import CALENDAR_TABLE, FACT_OF_SOURCE, OUTPUT_TABLES
from runtime.sink import Candidate, Output, TableSink, Transformed
from runtime.versions import HistoryUpdate

MUTATED = f"{REBUILD}mutated/"
_EXAMPLE_IDS = 20


def mutated_key(table: str, packet_id: int) -> str:
    return f"{MUTATED}{table}/{table}_packet_{packet_id}.json"


def staged_compute(pipeline: Pipeline, store: ProcessedStore, packet_id: int):
    """The compute of fact packet k for the commit steps, from its staged item."""

    def compute(table: str, name: str, object_keys: list[str]) -> tuple[Transformed, PacketLines]:
        item = StagedItem.load(store, table, packet_id)
        memory = pipeline.memory(table)
        if item.repeats and memory.versions:
            result, lines = pipeline.transform_packet(table, name, object_keys)
        else:
            result, lines = _with_memory(item, memory, name), item.lines
        _note_mutations(pipeline, table, packet_id, name, result)
        return result, lines

    return compute


def _with_memory(item: StagedItem, memory, name: str) -> Transformed:
    fact = FACT_OF_SOURCE[item.table]
    versions = item.versions  # their packet: this one
    found, remembered, packets = memory.recall(versions.column(0), versions[UPDATED])
    content = versions[HASH].to_numpy()
    # As the live screen (runtime/versions.py): content held from a later packet
    # supersedes (never in a rebuild, which commits in order), the same content is a
    # re-send, other content a change.
    superseded = found & (packets > item.packet)
    same = found & ~superseded & (remembered == content)
    changed = found & ~superseded & ~same
    keep = ~(same | superseded)
    ids = versions.column(0)
    kept_versions = versions.filter(pa.array(keep))
    outputs, reports = [], []
    calendar_report = None
    if item.fact is not None and keep.any():
        rows = pq.read_table(io.BytesIO(item.fact))
        body = item.fact
        if not keep.all():
            rows = rows.filter(pa.array(keep))
            body = _parquet(rows.cast(ARROW_SCHEMAS[fact.name]))
        updated = pc.max(kept_versions[UPDATED]).as_py()
        outputs.append(Output(fact.name, body, rows.num_rows, updated))
        # dim_date from the rows written, through the same sink as a live packet's.
        calendar = TableSink(CALENDAR_TABLE)
        calendar.add(Candidate(CALENDAR_TABLE, dim_date.build(dim_date.referenced_dates(rows, fact.dates),
                                                               updated)), None)
        output, calendar_report, _ = calendar.finish(name)
        if output is not None:
            outputs.append(output)
    resent = int(same.sum())
    skipped = resent + int(superseded.sum())
    for report in item.reports:
        if report.table == fact.name and skipped:
            report = type(report)(**{**report.__dict__, "rows_written": report.rows_written - skipped,
                                     "rows_skipped": report.rows_skipped + skipped})
        if report.table == CALENDAR_TABLE:
            report = calendar_report or type(report)(CALENDAR_TABLE, name, 0, 0, 0)
        reports.append(report)
    mutated = ids.filter(pa.array(changed))
    update = HistoryUpdate(
        table=item.table,
        # A re-send is remembered as sent by this packet too, first, as the live screen does.
        written=pa.concat_tables([versions.filter(pa.array(same)), kept_versions]),
        resent=resent,
        resent_ids=tuple(ids.filter(pa.array(same))[:_EXAMPLE_IDS].to_pylist()),
        mutated_ids=tuple(pc.unique(mutated).to_pylist()),
        mutated=len(mutated),
        superseded=int(superseded.sum()),
    )
    outputs.sort(key=lambda o: OUTPUT_TABLES.index(o.table))
    return Transformed(tuple(outputs), tuple(reports), item.quarantine, None, (update,))


def _note_mutations(pipeline: Pipeline, table: str, packet_id: int, name: str, result: Transformed) -> None:
    """The versions this packet wrote again with other content: the rows the report
    lists (a live run may have resolved the earlier row as superseded while it waited)."""
    ids = sorted({i for u in result.history for i in u.mutated_ids})
    if ids:
        body = json.dumps({"table": table, "packet": packet_id, "ids": ids}).encode()
        pipeline.put(mutated_key(table, packet_id), body, name, len(ids))


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()

