"""The operator commands' arguments, checked before anything is read or written.

Any text may arrive on a command line: `--packet 0`, `-1`, `abc`, 5,000 digits, a
100,000-character `--table`, a look-alike Unicode letter. Each is refused with one
bounded line that shows the value with `ascii()` (so a Cyrillic `а` in `sаles_order` is
visible), and the command exits 2 having changed nothing (docs/design.md#event).
"""

from __future__ import annotations

import re

from runtime.tables import SOURCES

# A refusal is one line of at most about 1 KB, however large the argument.
MAX_MESSAGE = 1000
# How much of a refused value is shown; the rest is counted.
SHOWN_CHARS = 60
# Packet ids are positive and fit the SSM parameters' int64 with room to spare.
MAX_PACKET_DIGITS = 18
# A reason or a name recorded for good in a commit record.
MAX_TEXT = 500

_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_STACK = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
# A function name, partial ARN or ARN, with an optional version or alias.
_FUNCTION = re.compile(r"^[A-Za-z0-9_:.$-]{1,170}$")
_QUEUE_URL = re.compile(r"^https?://[A-Za-z0-9.:-]{1,200}/[0-9]{1,20}/[A-Za-z0-9_-]{1,80}(\.fifo)?$")


class ArgumentRefused(ValueError):
    """An argument is not what its option takes; the message is one bounded line."""


def shown(value: object) -> str:
    """A value as it may be shown in a refusal: ascii(), cut, its length counted."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= SHOWN_CHARS:
        return ascii(text)
    return f"{ascii(text[:SHOWN_CHARS])}... ({len(text):,} characters)"


def one_line(message: str) -> str:
    """Any message as one printable ASCII line of at most MAX_MESSAGE characters."""
    flat = " ".join(message.encode("ascii", "backslashreplace").decode("ascii").split())
    if len(flat) <= MAX_MESSAGE:
        return flat
    return flat[: MAX_MESSAGE - 40] + f"... ({len(flat):,} characters in all)"


def packet_id(text: str) -> int:
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or len(stripped) > MAX_PACKET_DIGITS:
        raise ArgumentRefused(f"--packet {shown(text)} is not a packet id (a whole number from 1)")
    value = int(stripped)
    if value < 1:
        raise ArgumentRefused(f"--packet {shown(text)} is not a packet id: packet ids start at 1")
    return value


def source_table(text: str) -> str:
    if text not in SOURCES:
        raise ArgumentRefused(
            f"--table {shown(text)} is not a consumed source table (one of {', '.join(sorted(SOURCES))})"
        )
    return text


def recorded_text(option: str):
    """A free text recorded for good (`--reason`, `--by`): not blank, bounded, printable."""

    def check(text: str) -> str:
        if not text.strip():
            raise ArgumentRefused(f"{option} is blank: it is recorded for good, say something")
        if len(text) > MAX_TEXT or not text.isprintable():
            raise ArgumentRefused(
                f"{option} {shown(text)} must be printable text of at most {MAX_TEXT} characters"
            )
        return text.strip()

    return check


def function_name(text: str) -> str:
    if not _FUNCTION.match(text):
        raise ArgumentRefused(f"--function {shown(text)} is not a Lambda function name or ARN")
    return text


def queue_url(text: str) -> str:
    if not _QUEUE_URL.match(text):
        raise ArgumentRefused(
            f"--queue-url {shown(text)} is not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
        )
    return text


def stage(text: str) -> str:
    if not _STAGE.match(text):
        raise ArgumentRefused(
            f"--stage {shown(text)} is not a stage name (lower-case letters, digits and '-', at most 20)"
        )
    return text


def stack_name(text: str) -> str:
    if not _STACK.match(text):
        raise ArgumentRefused(f"--stack {shown(text)} is not a CloudFormation stack name")
    return text


def file_key(text: str) -> str:
    """A quarantine file's key, as `quarantine --file` takes it."""
    if not text.startswith("_quarantine/") or len(text) > 1024 or not text.isprintable() or not text.isascii():
        raise ArgumentRefused(f"--file {shown(text)} is not a key under _quarantine/ (see `quarantine`)")
    return text


def limit(text: str) -> int:
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or len(stripped) > 6 or int(stripped) < 1:
        raise ArgumentRefused(f"--limit {shown(text)} is not a whole number from 1 to 999999")
    return int(stripped)
