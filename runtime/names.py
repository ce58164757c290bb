"""Plain strings the runtime and the stack share: the service, the metrics' namespace and
their names (docs/design.md#observability). No imports: the CDK app reads these at
synth without loading the runtime's logging or data libraries.
"""

from __future__ import annotations

SERVICE = "totesys-processing"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_NAMESPACE = "TotesysProcessing"

# The metric names the stack's alarms refer to.
PACKETS_PROCESSED = "PacketsProcessed"
ROWS_WRITTEN = "RowsWritten"
ROWS_REJECTED = "RowsRejected"  # rows that need a fix at the source
ROWS_WAITING = "RowsWaiting"  # fact rows waiting for a dimension key (they heal themselves)
PACKET_GAP = "PacketGap"
PROCESSING_FAILED = "ProcessingFailed"
LATE_PACKET = "LatePacket"  # objects of a packet that was passed over have appeared
SCHEMA_DRIFT = "SchemaDrift"  # a source packet's columns differ from the declaration
SILENT_MUTATION = "SilentMutation"  # a fact version already written came back changed
METRIC_NAMES = (
    PACKETS_PROCESSED,
    ROWS_WRITTEN,
    ROWS_REJECTED,
    ROWS_WAITING,
    PACKET_GAP,
    LATE_PACKET,
    SCHEMA_DRIFT,
    SILENT_MUTATION,
    PROCESSING_FAILED,
)
