"""The processor's typed errors.

Callers match on these classes, never on message text. Where the original
specification names a builtin (FileExistsError, ConnectionError, KeyError), the typed
error subclasses it, so `except FileExistsError` works as the specification says.
"""

from __future__ import annotations


class ProcessingError(Exception):
    """Base of every error this processor raises on purpose."""


class ConfigError(ProcessingError):
    """The environment is missing or has a bad setting; raised at cold start."""


class InvalidEventError(ProcessingError, ValueError):
    """The invocation event does not follow the contract; nothing was done."""


class MissingPacketError(ProcessingError):
    """A packet has no objects, and no later packet named so far has any either.

    Retryable: the ingestion may still be writing it. Nothing is passed over on the
    word of an event alone (DESIGN §3).
    """

    def __init__(self, table: str, packet_id: int, prefix: str, newest: int | None = None) -> None:
        later = (
            f"; no later packet up to the newest named ({table}:{newest}) has any either, "
            "so nothing is passed over"
            if newest is not None and newest > packet_id
            else ""
        )
        super().__init__(
            f"packet {table}:{packet_id} has no objects under {prefix!r}{later} "
            "(the ingestion may still be writing it; the invocation will be retried)"
        )
        self.table = table
        self.packet_id = packet_id


class UnreadableObjectError(ProcessingError):
    """An object of a packet cannot be read at all (corrupt gzip, not UTF-8, ...).

    Not a bad row (those are quarantined): this holds back later packets until fixed.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot read ingestion object {key!r}: {reason}")
        self.key = key


class OutputConflictError(ProcessingError, FileExistsError):
    """An output key already exists with different content."""

    def __init__(self, key: str, existing_sha256: str | None, new_sha256: str) -> None:
        super().__init__(
            f"{key!r} already exists with sha256 {existing_sha256}, "
            f"not the {new_sha256} this run computed; refusing to overwrite"
        )
        self.key = key


class StorageUnavailableError(ProcessingError, ConnectionError):
    """S3 or Parameter Store could not be reached after the SDK's retries."""


class StorageError(ProcessingError):
    """S3 or Parameter Store answered with an error that retrying will not fix."""


class PacketIdNotFoundError(ProcessingError, KeyError):
    """A packet-id parameter does not exist in Parameter Store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class PacketIdOrderError(ProcessingError, ValueError):
    """A packet id write that is not previous + 1 (or the same id again)."""


class CorruptRecordError(ProcessingError):
    """A record the processor wrote itself (commit, pending mark, state) is unreadable."""


class LineAccountingError(ProcessingError):
    """The lines of an object or packet do not add up to written + rejected + skipped
    + blank: a bug in this processor, never bad data (DESIGN §7b). Nothing is committed."""
