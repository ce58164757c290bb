"""What one commit is reported as: the validation report of each table, the fact
memory's re-sends, superseded waits and silent changes, and the metrics
(docs/design.md#observability, #validation, #fact-memory). Called by the one commit
path (runtime.pipeline) after steps 3 and 4, never for a commit found already done.
"""

from __future__ import annotations

from runtime.observability import (
    ROWS_REJECTED,
    ROWS_WAITING,
    ROWS_WRITTEN,
    SILENT_MUTATION,
    Metrics,
    logger,
)
from runtime.pending import REPLAY
from runtime.records import CommitRecord, PacketLines, PacketOutcome
from runtime.tables import SOURCES
from runtime.transform import Transformed
from runtime.versions import HistoryUpdate


def count(
    metrics: Metrics, name: str, record: CommitRecord, result: Transformed, packet_lines: PacketLines | None = None
) -> PacketOutcome:
    """What one commit wrote, logged and counted: the validation reports, the fact
    memory's re-sends, supersessions and changes, the metrics; and its outcome."""
    lines = packet_lines.per_object if packet_lines is not None else None
    empty_objects = tuple(key for key, n in (lines or {}).items() if n == 0)
    empty_packet = packet_lines is not None and packet_lines.rows == 0
    if empty_objects:
        logger.warning("objects that hold no lines", extra={"packet": name, "keys": list(empty_objects[:10]),
                                                            "count": len(empty_objects)})
    if empty_packet:
        logger.warning("packet holds no rows: legal, but unusual",
                       extra={"packet": name, "objects": len(lines), "lines": sum(lines.values())})
    primary = SOURCES[record.table].primary_output if record.table in SOURCES else None
    for report in result.reports:
        if report.rows_in or (empty_packet and report.table == primary):
            log = report.to_log()
            if lines is not None and report.table == primary:
                # The packet's objects, counted where its rows are.
                log |= {"objects": len(lines), "empty_objects": len(empty_objects)}
            logger.info("validation report", extra={"validation": log})
    for memory in result.history:
        report_memory(metrics, name, memory)
    for out in record.outputs:
        metrics.add(ROWS_WRITTEN, out.table, out.rows)
    for report in result.reports:
        # Waits heal themselves (docs/design.md#waits-and-replays): RowsWaiting, when
        # they start; RowsRejected is for rows that need a fix at the source.
        if report.rows_rejected - report.rows_waiting:
            metrics.add(ROWS_REJECTED, report.table, report.rows_rejected - report.rows_waiting)
        if report.rows_waiting and record.table != REPLAY:
            metrics.add(ROWS_WAITING, report.table, report.rows_waiting)
    return PacketOutcome(
        name, "committed", record.outputs, record.quarantine, result.reports, empty_objects, empty_packet
    )

def report_memory(metrics: Metrics, name: str, memory: HistoryUpdate) -> None:
    """Fact versions already written: re-sends skipped (INFO), changes reported."""
    if memory.resent:
        logger.info(
            "fact versions already written: skipped",
            extra={"packet": name, "table": memory.table, "rows_skipped": memory.resent,
                   "reason": "the same version with the same content was written by an earlier packet",
                   "ids": list(memory.resent_ids)},
        )
    if memory.superseded:
        logger.info(
            "waiting fact versions superseded by a later packet: skipped",
            extra={"packet": name, "table": memory.table, "rows_skipped": memory.superseded,
                   "reason": "a later packet's content of the same version was written or re-sent",
                   "superseded_by": {f"{memory.table}:{k}": list(v) for k, v in memory.superseded_by.items()}},
        )
    if memory.mutated:
        logger.warning(
            "a fact version already written (or still waiting) came back changed: written as the newest truth",
            extra={"packet": name, "table": memory.table, "rows": memory.mutated,
                   "ids": list(memory.mutated_ids[:100]), "ids_total": len(memory.mutated_ids)},
        )
        metrics.add(SILENT_MUTATION, memory.table, memory.mutated)

