"""What the pipeline needs from the outside world, as Protocols.

The S3 and SSM adapters implement them for Lambda; tests use in-memory fakes of the
same ports. Nothing behind these names is imported by the core.
"""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO, Protocol


class IngestionSource(Protocol):
    """The ingestion bucket: read only."""

    def list_keys(self, prefix: str) -> list[str]:
        """Every key starting with `prefix`, in key order (all pages)."""

    def list_after(self, prefix: str, start_after: str, max_keys: int) -> list[str]:
        """At most `max_keys` keys starting with `prefix` that sort after
        `start_after`, in key order: one LIST call (a bounded look)."""

    def open(self, key: str) -> BinaryIO:
        """A stream of the object's bytes, read as it is consumed."""

    def last_modified(self, key: str) -> datetime:
        """When the object was written (S3 LastModified): no row in it can be newer."""


class ProcessedStore(Protocol):
    """The processed bucket: immutable objects, plus deletable pending marks."""

    def list_keys(self, prefix: str) -> list[str]: ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when the key does not exist."""

    def put_if_absent(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """Write `key` only if it does not exist (a conditional put).

        Returns True when written, False when the key already held these exact bytes
        (an earlier attempt wrote it). Raises FileExistsError (OutputConflictError)
        when it holds other bytes.
        """

    def delete(self, key: str) -> None: ...

    def last_modified(self, key: str) -> datetime:
        """When the object was written (a replay bounds quarantined rows by it)."""


class PacketIds(Protocol):
    """Packet ids in Parameter Store (docs/design.md#ordering)."""

    def read_packet_id(self, name: str) -> int:
        """Raises KeyError (PacketIdNotFoundError) when the parameter does not exist."""

    def write_packet_id(self, name: str, packet_id: int) -> None:
        """Store `packet_id` if it is the current id + 1; the same id again is a no-op;
        anything else raises PacketIdOrderError."""
