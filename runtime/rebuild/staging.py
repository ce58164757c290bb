"""The fact item worker: one fact packet read, screened, coerced, built and validated
against the rebuilt dimensions, and staged (docs/design.md#rebuild).

This is nearly all of the rebuild's CPU and it runs in parallel (one Distributed Map
item per fact packet), so it may not depend on any other fact packet: it runs with an
empty fact memory. What the memory would have done (re-sends skipped, silent mutations
reported) is done by the ordered commit (runtime.rebuild.commit) from what is staged
here: each written row's version and content hash, aligned with the fact rows.

Staged under `_rebuild/staged/{table}/{table}_packet_{k}/` in the target: the fact
rows (Parquet, the warehouse schema), their versions (id, last_updated, hash), the
quarantine files, and `item.json` (reports and line counts) written last, so an item
is staged once its `item.json` exists and a retried item writes the same bytes.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from runtime import keys
from runtime.errors import CorruptRecordError
from runtime.history import SEGMENT_SCHEMA, FactMemory
from runtime.parquet import from_parquet
from runtime.pipeline import Pipeline
from runtime.ports import ProcessedStore
from runtime.rebuild.plan import REBUILD
from runtime.records import PacketLines
from runtime.tables import FACT_OF_SOURCE, SOURCES
from runtime.validation import Failure, TableReport

STAGED = f"{REBUILD}staged/"
# A fact report's failure for two different rows of one version in one packet.
_CONFLICT = "one row per version"


def item_prefix(table: str, packet_id: int) -> str:
    return f"{STAGED}{keys.packet_prefix(table, packet_id)}staged/"


@dataclass(frozen=True)
class StagedItem:
    """What the worker staged for one fact packet."""

    table: str
    packet: int
    fact: bytes | None  # the fact rows (Parquet), or None when none passed
    versions: pa.Table  # id, last_updated, hash of each fact row, in row order
    quarantine: dict[str, bytes]
    reports: tuple[TableReport, ...]
    lines: PacketLines  # what its objects held
    # Some version came on more than one line of the packet (a duplicate or a
    # conflict): then the memory's screen before the packet's own decides, and the
    # commit computes the packet the live way instead (runtime.rebuild.commit).
    repeats: bool

    @classmethod
    def load(cls, store: ProcessedStore, table: str, packet_id: int) -> StagedItem:
        prefix = item_prefix(table, packet_id)
        meta = store.read(f"{prefix}item.json")
        if meta is None:
            raise CorruptRecordError(f"fact packet {table}:{packet_id} is not staged ({prefix}item.json)")
        raw = json.loads(meta)
        fact = store.read(f"{prefix}fact.parquet") if raw["fact"] else None
        versions = store.read(f"{prefix}versions.parquet")
        if (raw["fact"] and fact is None) or versions is None:
            raise CorruptRecordError(f"staged fact packet {table}:{packet_id} lacks an object under {prefix}")
        quarantine = {}
        for out in raw["quarantine"]:
            body = store.read(f"{prefix}quarantine_{out}.jsonl")
            if body is None:
                raise CorruptRecordError(f"staged fact packet {table}:{packet_id} lacks its {out} quarantine")
            quarantine[out] = body
        return cls(table, packet_id, fact, from_parquet(versions).cast(SEGMENT_SCHEMA), quarantine,
                   tuple(_report(r) for r in raw["reports"]), PacketLines(raw["lines"], raw["rows"]), raw["repeats"])


def stage(pipeline: Pipeline, store: ProcessedStore, table: str, packet_id: int) -> int:
    """Stage fact packet (table, k) unless it is staged already; returns its rows."""
    prefix = item_prefix(table, packet_id)
    done = store.read(f"{prefix}item.json")
    if done is not None:
        return json.loads(done)["rows"]
    source = SOURCES[table]
    name = f"{table}:{packet_id}"
    object_keys = [k for k in pipeline.source.list_keys(keys.packet_prefix(table, packet_id))
                   if keys.is_packet_object(k)]
    result, lines = pipeline.transform_packet(table, name, object_keys, FactMemory.empty(source))
    fact_table = FACT_OF_SOURCE[table].name
    [update] = result.history
    fact = next((o for o in result.outputs if o.table == fact_table), None)
    if fact is not None:
        pipeline.put(f"{prefix}fact.parquet", fact.body, name, fact.rows)
    pipeline.put(f"{prefix}versions.parquet", _parquet(update.written.cast(SEGMENT_SCHEMA)), name,
                  update.written.num_rows)
    for out, body in sorted(result.quarantine.items()):
        pipeline.put(f"{prefix}quarantine_{out}.jsonl", body, name, body.count(b"\n"))
    report = next(r for r in result.reports if r.table == fact_table)
    rows = lines.rows
    meta = {
        "table": table, "packet": packet_id, "fact": fact is not None,
        "quarantine": sorted(result.quarantine), "lines": lines.per_object, "rows": rows,
        "repeats": bool(report.rows_skipped or any(_CONFLICT in f.check for f in report.failures)),
        "reports": [_report_json(r) for r in result.reports],
    }
    pipeline.put(f"{prefix}item.json", json.dumps(meta, sort_keys=True).encode(), name, rows)
    return rows


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _report_json(report: TableReport) -> dict:
    return {
        "table": report.table, "source_packet": report.source_packet, "rows_in": report.rows_in,
        "rows_written": report.rows_written, "rows_rejected": report.rows_rejected,
        "rows_skipped": report.rows_skipped, "lines": report.lines, "blank": report.blank,
        "failures": [
            {"column": f.column, "check": f.check, "lines": f.lines.tolist(), "examples": list(f.examples),
             "waits_for": f.waits_for}
            for f in report.failures
        ],
    }


def _report(raw: dict) -> TableReport:
    failures = tuple(
        Failure(f["column"], f["check"], np.array(f["lines"], dtype=np.int64), tuple(f["examples"]),
                waits_for=f["waits_for"])
        for f in raw.pop("failures")
    )
    return TableReport(**raw, failures=failures)
