"""The S3 key layout of both buckets (docs/design.md#input-layout, #keys, #ordering, #validation), in one place.

Every table name is checked against the declared tables before a key is built, so no
event or record can steer a key outside its prefix.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from runtime.tables import OUTPUT_TABLES, SOURCES

TS_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # the year always four digits (see key_timestamp)
COMMITS = "_commits/"
PENDING = "_pending/"
STATE = "_state/"
QUARANTINE = "_quarantine/"


def _source(table: str) -> str:
    if table not in SOURCES:
        raise ValueError(f"{table!r} is not a consumed source table")
    return table


def _output(table: str) -> str:
    if table not in OUTPUT_TABLES:
        raise ValueError(f"{table!r} is not an output table")
    return table


def _positive(n: int) -> int:
    if type(n) is not int or n < 1:
        raise ValueError(f"packet number must be a positive int, got {n!r}")
    return n


def packet_prefix(table: str, packet_id: int) -> str:
    """Every ingestion object of a packet starts with this; the trailing '_' keeps
    packet 1 from matching packet 10."""
    return f"{_source(table)}/{table}_packet_{_positive(packet_id)}_"


_PACKET_OBJECT = re.compile(r"^([a-z_]+)/\1_packet_(\d+)_")


def packet_of_object(key: str) -> int | None:
    """The packet number of an ingestion object's key, or None when it is not one."""
    match = _PACKET_OBJECT.match(key)
    return int(match.group(2)) if match and match.group(1) in SOURCES else None


def is_packet_object(key: str) -> bool:
    return key.endswith(".jsonl") or key.endswith(".jsonl.gz")


def key_timestamp(updated: datetime) -> str:
    """`updated` as TS_FORMAT, in UTC, with a zero-padded four-digit year.

    strftime's %Y gives `1` for year 1 on Linux, which would make keys of early years
    sort and parse wrongly; an aware time is converted to UTC first, a naive one is
    UTC already (docs/design.md#keys).
    """
    if updated.tzinfo is not None and updated.utcoffset() is not None:
        try:
            updated = updated.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError as exc:
            raise ValueError(f"{updated.isoformat()} is outside years 1-9999 in UTC") from exc
    return f"{updated.year:04d}{updated.strftime('%m%dT%H%M%S.%f')}Z"


def output_key(table: str, n: int, updated: datetime) -> str:
    return f"{output_packet_prefix(table, n)}processed_{key_timestamp(updated)}.parquet"


def output_packet_prefix(table: str, n: int) -> str:
    """Every object of output packet `n` of `table` starts with this (the trailing `_`
    keeps packet 1 from matching packet 10)."""
    return f"{_output(table)}/{table}_packet_{_positive(n)}_"


def commit_key(table: str, packet_id: int) -> str:
    return f"{COMMITS}{_source(table)}/{table}_packet_{_positive(packet_id)}.json"


def state_key(table: str, packet_id: int) -> str:
    return f"{STATE}{_source(table)}/{table}_packet_{_positive(packet_id)}.parquet"


def quarantine_key(output_table: str, source_table: str, packet_id: int) -> str:
    return (
        f"{QUARANTINE}{_output(output_table)}/{output_table}_from_"
        f"{_source(source_table)}_packet_{_positive(packet_id)}_rejected.jsonl"
    )


REPLAY_COMMITS = f"{COMMITS}replay/"
REPLAY_CLAIMS = "_replays/"
_REPLAY_CLAIM = re.compile(r"^_replays/replay_(\d+)\.json$")


def replay_claim_key(replay: int) -> str:
    return f"{REPLAY_CLAIMS}replay_{_positive(replay)}.json"


def parse_replay_claim(key: str) -> int | None:
    match = _REPLAY_CLAIM.match(key)
    return int(match.group(1)) if match else None


_REPLAY_ID = re.compile(r"^[a-z0-9_]{1,80}$")


def replay_id(value: int | str) -> str:
    """A replay's name in keys: an operator's number, or after_{table}_packet_{k}."""
    text = str(_positive(value)) if isinstance(value, int) else value
    if not isinstance(text, str) or not _REPLAY_ID.match(text):
        raise ValueError(f"not a replay id: {value!r}")
    return text


def replay_commit_key(replay: int | str) -> str:
    """A replay's commit record (one for all the facts it offers again)."""
    return f"{REPLAY_COMMITS}replay_{replay_id(replay)}.json"


def earlier_replay_commit_keys(replay: int | str) -> tuple[str, ...]:
    """The names earlier versions gave a replay's commit record: one committed under
    such a name before an upgrade is found there and finished, never run again."""
    return (f"{REPLAY_COMMITS}fact_sales_order_replay_{replay_id(replay)}.json",)


def replay_commit_keys(replay: int | str) -> tuple[str, ...]:
    """Every key a replay's commit record may be under, its own first."""
    return (replay_commit_key(replay), *earlier_replay_commit_keys(replay))


def quarantine_prefix(output_table: str) -> str:
    return f"{QUARANTINE}{_output(output_table)}/"


def replay_quarantine_key(output_table: str, replay: int | str) -> str:
    """Rows a replay could still not write, with their new reasons."""
    return f"{quarantine_prefix(output_table)}{output_table}_from_replay_{replay_id(replay)}_rejected.jsonl"


def pending_key(seq: int, replay_after: bool = False) -> str:
    """Zero-padded, so a listing returns pending records in arrival order. A replay
    queued by the record `seq` itself sorts right after it, before seq + 1."""
    return f"{PENDING}{_positive(seq):012d}{'_replay' if replay_after else ''}.json"


_PENDING = re.compile(r"^_pending/(\d{12})(_replay)?\.json$")


def parse_pending_key(key: str) -> tuple[int, bool] | None:
    """(sequence number, whether it is a replay queued after that record), or None."""
    match = _PENDING.match(key)
    return (int(match.group(1)), bool(match.group(2))) if match else None


# -- late packets (passed over, then their objects arrived) -------------------------

GAPS = "_gaps/"  # one marker per passed-over packet not processed late (yet)
LATE_COMMITS = f"{COMMITS}late/"


def gap_key(table: str, packet_id: int) -> str:
    return f"{GAPS}{_source(table)}/{table}_packet_{_positive(packet_id)}.json"


_GAP = re.compile(r"^_gaps/([a-z_]+)/\1_packet_(\d+)\.json$")


def parse_gap_key(key: str) -> tuple[str, int] | None:
    match = _GAP.match(key)
    if not match or match.group(1) not in SOURCES:
        return None
    return match.group(1), int(match.group(2))


def late_commit_key(table: str, packet_id: int) -> str:
    return f"{LATE_COMMITS}{_source(table)}/{table}_packet_{_positive(packet_id)}.json"


def late_state_key(table: str, packet_id: int) -> str:
    return f"{STATE}{_source(table)}/{table}_late_packet_{_positive(packet_id)}.parquet"


def late_quarantine_key(output_table: str, source_table: str, packet_id: int) -> str:
    return (
        f"{QUARANTINE}{_output(output_table)}/{output_table}_from_"
        f"{_source(source_table)}_late_packet_{_positive(packet_id)}_rejected.jsonl"
    )


# -- the fact memory (runtime.history) ----------------------------------------------

HISTORY = "_history/"


def history_manifest_key(table: str, n: int) -> str:
    """The fact memory of source `table` once its fact output packet `n` is written."""
    return f"{HISTORY}{_source(table)}/{table}_manifest_{_positive(n)}.parquet"


def history_segment_key(table: str, first: int, last: int) -> str:
    """The versions written in fact output packets first..last of source `table` (0:
    none yet, for the re-sends a packet remembered before any output)."""
    return f"{HISTORY}{_source(table)}/{table}_segment_{_count(first)}_to_{_count(last)}.parquet"


def history_then_key(table: str, n: int, packet_id: int) -> str:
    """The fact memory of source `table` once source packet `packet_id`, which wrote no
    fact output after output packet `n`, remembered the versions it re-sent."""
    return f"{HISTORY}{_source(table)}/{table}_manifest_{_count(n)}_then_packet_{_positive(packet_id)}.parquet"


_THEN = re.compile(r"^_history/([a-z_]+)/\1_manifest_(\d+)_then_packet_(\d+)\.parquet$")


def parse_history_then_key(key: str) -> tuple[str, int, int] | None:
    """(table, n, packet) of a history_then_key, or None."""
    match = _THEN.match(key)
    return (match.group(1), int(match.group(2)), int(match.group(3))) if match else None


def _count(n: int) -> int:
    if type(n) is not int or n < 0:
        raise ValueError(f"output packet count must be an int >= 0, got {n!r}")
    return n
