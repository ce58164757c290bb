"""The logger and the metrics, shared by every module.

Logs: one structured JSON line per event (Powertools Logger), with the invocation's
packet list appended as correlation keys. Metrics: CloudWatch embedded metric format
(EMF) lines on stdout, one per table per invocation, dimension `table`, so the alarms
can name exactly what they watch; and, when waiting facts were listed, one `RowsWaiting`
document per fact table with open waits, dimensions (table, wait=overdue): the waits
older than the alarm age (docs/design.md#observability).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from typing import TextIO

from aws_lambda_powertools import Logger

from runtime.names import (
    DEFAULT_NAMESPACE,
    LATE_PACKET,
    METRIC_NAMES,
    NAMESPACE_ENV,
    PACKET_GAP,
    PACKETS_PROCESSED,
    PROCESSING_FAILED,
    ROWS_REJECTED,
    ROWS_WAITING,
    ROWS_WRITTEN,
    SCHEMA_DRIFT,
    SERVICE,
    SILENT_MUTATION,
)

# The names are runtime.names' (the stack reads them there); callers may read them here.
__all__ = [
    "DEFAULT_NAMESPACE",
    "LATE_PACKET",
    "METRIC_NAMES",
    "NAMESPACE_ENV",
    "PACKET_GAP",
    "PACKETS_PROCESSED",
    "PROCESSING_FAILED",
    "ROWS_REJECTED",
    "ROWS_WAITING",
    "ROWS_WRITTEN",
    "SCHEMA_DRIFT",
    "SERVICE",
    "SILENT_MUTATION",
    "Metrics",
    "logger",
]

logger = Logger(service=SERVICE, use_rfc3339=True)


class Metrics:
    """Counts by (table, metric) for one invocation, flushed as EMF at its end."""

    def __init__(self, namespace: str | None = None, stream: TextIO | None = None) -> None:
        self.namespace = namespace or os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE
        self._stream = stream
        self.counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.overdue_waits: dict[str, int] = {}  # fact table -> waits older than the alarm age

    def set_overdue_waits(self, table: str, rows: int) -> None:
        """How many of `table`'s open waits are older than the alarm age (a level, not a
        count: the last value listed in the invocation is the one flushed)."""
        self.overdue_waits[table] = rows

    def add(self, name: str, table: str, value: float = 1) -> None:
        if name not in METRIC_NAMES:
            raise ValueError(f"unknown metric {name!r}")
        self.counts[table][name] += value

    def flush(self) -> list[dict]:
        """Write one EMF document per table and reset; returns what was written."""
        timestamp = int(time.time() * 1000)
        documents = []
        for table, values in sorted(self.counts.items()):
            documents.append(
                {
                    "_aws": {
                        "Timestamp": timestamp,
                        "CloudWatchMetrics": [
                            {
                                "Namespace": self.namespace,
                                "Dimensions": [["table"]],
                                "Metrics": [{"Name": n, "Unit": "Count"} for n in sorted(values)],
                            }
                        ],
                    },
                    "table": table,
                    **{n: v for n, v in sorted(values.items())},
                }
            )
        for table, rows in sorted(self.overdue_waits.items()):
            documents.append(
                {
                    "_aws": {
                        "Timestamp": timestamp,
                        "CloudWatchMetrics": [
                            {
                                "Namespace": self.namespace,
                                "Dimensions": [["table", "wait"]],
                                "Metrics": [{"Name": ROWS_WAITING, "Unit": "Count"}],
                            }
                        ],
                    },
                    "table": table,
                    "wait": "overdue",
                    ROWS_WAITING: rows,
                }
            )
        stream = self._stream or sys.stdout
        for document in documents:
            stream.write(json.dumps(document) + "\n")
        stream.flush()
        self.counts.clear()
        self.overdue_waits.clear()
        return documents
