"""The processor's typed errors.

Callers match on these classes, never on message text. Where the original
specification names a builtin (FileExistsError, ConnectionError, KeyError), the typed
error subclasses it, so `except FileExistsError` works as the specification says.
"""

from __future__ import annotations

# However large the input, a message stays readable in one log line
# (docs/design.md#event): about 1 KB at most, names quoted with ascii().
MESSAGE_LIMIT = 1000
NAME_LIMIT = 64


def shown(value: object, limit: int = NAME_LIMIT) -> str:
    """`value` quoted for a message, never raising and never long: text with ascii()
    (a look-alike letter shows as its escape), cut at `limit` characters with its
    length noted; a huge int by its size (str() of one over 4,300 digits raises);
    anything else by its type alone (its repr could be anything)."""
    if isinstance(value, str):
        text = str.__str__(value)  # a str subclass's own __str__ could lie or raise
        cut = ascii(text[:limit])
        return cut if len(text) <= limit else f"{cut}... ({len(text):,} characters)"
    if type(value) is bool or value is None:
        return repr(value)
    if type(value) is int:
        digits = int(value.bit_length() * 0.30103) + 1
        return repr(value) if digits <= 30 else f"an integer of about {digits:,} digits"
    if type(value) is float:
        return repr(value)
    return f"a {type_name(value)}"


def type_name(value: object) -> str:
    """The name of `value`'s type, bounded and ascii (a class can be named anything)."""
    name = str.__str__(type(value).__name__)
    return ascii(name[:40])[1:-1] + ("..." if len(name) > 40 else "")


def got(value: object) -> str:
    """What a message says was found instead: `float 3.0`, `str 'x'`, `a Decimal`."""
    text = shown(value)
    return text if text.startswith("a ") else f"{type_name(value)} {text}"


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """`message` in ascii (any other character as its escape), cut at `limit`
    characters, saying so."""
    message = message.encode("ascii", "backslashreplace").decode("ascii")
    return message if len(message) <= limit else message[: limit - 30] + f"... ({len(message):,} characters)"


class ProcessingError(Exception):
    """Base of every error this processor raises on purpose."""


class ConfigError(ProcessingError):
    """The environment is missing or has a bad setting; raised at cold start."""

    def __init__(self, message: str) -> None:
        super().__init__(bounded(message))


class InvalidEventError(ProcessingError, ValueError):
    """The invocation event does not follow the contract; nothing was done."""

    def __init__(self, message: str) -> None:
        super().__init__(bounded(message))


class MissingPacketError(ProcessingError):
    """A packet has no objects, and no later packet of its table has any either.

    Retryable: the ingestion may still be writing it. Nothing is passed over on the
    word of an event alone (docs/design.md#input-layout).
    """

    def __init__(self, table: str, packet_id: int, prefix: str, looked_for_later: bool = False) -> None:
        later = (
            f"; no later packet of {table} has objects in the bucket either, so nothing is passed over"
            if looked_for_later
            else ""
        )
        super().__init__(
            f"packet {table}:{packet_id} has no objects under {shown(prefix, 200)}{later} "
            "(the ingestion may still be writing it; the invocation will be retried)"
        )
        self.table = table
        self.packet_id = packet_id


class UnreadableObjectError(ProcessingError):
    """An object of a packet cannot be read at all (corrupt gzip, not UTF-8, ...).

    Not a bad row (those are quarantined): this holds back later packets until fixed.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(bounded(f"cannot read ingestion object {shown(key, 200)}: {bounded(reason, 400)}"))
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
    + blank: a bug in this processor, never bad data (docs/design.md#line-screen). Nothing is committed."""
