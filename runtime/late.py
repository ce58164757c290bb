"""Passing over and late packets (docs/design.md#input-layout: pass over only on evidence).

A packet with no objects is passed over only when a later packet of its table has
objects in the bucket; an event naming a later packet is no evidence. A passed-over
packet leaves a gap marker under _gaps/, checked at every invocation: when its objects
arrive it is a late packet, reported at ERROR until an operator asks for it, and then
processed once with the same commit steps as a packet (runtime.pipeline), under its
own commit record in _commits/late/; consumed does not move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from runtime import keys
from runtime.errors import MissingPacketError
from runtime.events import PacketRef
from runtime.observability import LATE_PACKET, Metrics, logger
from runtime.ports import IngestionSource, ProcessedStore
from runtime.records import CommitRecord, CommitSpace, Computed, PacketLines, PacketOutcome, RunSummary


def check_gaps(
    store: ProcessedStore,
    source: IngestionSource,
    metrics: Metrics,
    named: tuple[PacketRef, ...],
    requested: set[PacketRef],
    summary: RunSummary,
) -> dict[tuple[str, int], bool]:
    """Every passed-over packet not yet processed late, and whether its objects
    have arrived since: (table, id) -> has objects.

    Checked at the start of every invocation, named or not: one listing of
    `_gaps/` (a marker per open gap, so normally empty) and one per open gap. A
    late packet is an ERROR and a `LatePacket` metric at every invocation until
    an operator processes it (`runtime.operations late`), never "already
    processed".
    """
    gaps = {}
    for key in store.list_keys(keys.GAPS):
        gap = keys.parse_gap_key(key)
        if gap is None:
            logger.warning("ignoring an unexpected object under _gaps/", extra={"key": key})
            continue
        table, packet_id = gap
        found = packet_objects(source, table, packet_id)
        gaps[gap] = bool(found)
        ref = PacketRef(table, packet_id)
        if found and ref not in requested:
            summary.late.append(str(ref))
            logger.error(
                "objects of a packet that was passed over have arrived: a late packet, not processed",
                extra={
                    "packet": str(ref),
                    "objects": found[:10],
                    "named_again": ref in named,
                    "to_process_it": f"python -m runtime.operations late --table {table} --packet {packet_id}",
                },
            )
            metrics.add(LATE_PACKET, table)
    return gaps


def process_late(p: Committer, table: str, packet_id: int) -> PacketOutcome:
    """Process a passed-over packet whose objects arrived, once, at an operator's
    request: the pipeline's commit steps, under its own commit record in
    `_commits/late/`. Its outputs take the next numbers; its dimension rows
    follow the state rules against today's state; consumed does not move."""
    name = f"{table}:{packet_id}"
    passed = p.store.read(keys.commit_key(table, packet_id))
    if passed is None or not CommitRecord.from_json(keys.commit_key(table, packet_id), passed).missing:
        logger.error("late processing asked for a packet that was not passed over: ignored",
                     extra={"packet": name})
        return PacketOutcome(name, "ignored")

    def compute() -> Computed:
        object_keys = packet_objects(p.source, table, packet_id)
        if not object_keys:
            raise MissingPacketError(table, packet_id, keys.packet_prefix(table, packet_id))
        consumed = p.consumed(table)
        seq = sum(1 for r in p.late_records_of(table) if r.late["after"] == consumed)
        result, lines = p.transform_packet(table, name, object_keys)
        return Computed(CommitRecord(table, packet_id, late={"after": consumed, "seq": seq}), result, lines)

    space = CommitSpace(
        name,
        keys.late_commit_key(table, packet_id),
        lambda output_table: keys.late_quarantine_key(output_table, table, packet_id),
        keys.late_state_key(table, packet_id),
    )
    record, outcome = p.commit(space, compute)
    if outcome.status == "recovered":
        return outcome
    p.late_records_of(table).append(record)
    logger.warning("late packet processed", extra={
        "packet": name, "rows_written": {o.table: o.rows for o in record.outputs}})
    return replace(outcome, status="late")


class Committer(Protocol):
    """What a late packet needs of the pipeline that runs it (runtime.pipeline.Pipeline):
    its commit steps and committed state. A Protocol, so this module imports no caller."""

    store: ProcessedStore
    source: IngestionSource

    def commit(self, space: CommitSpace, compute: Callable[[], Computed]) -> tuple[CommitRecord, PacketOutcome]: ...

    def consumed(self, table: str) -> int: ...

    def late_records_of(self, table: str) -> list[CommitRecord]: ...

    def transform_packet(self, table: str, name: str, object_keys: list[str]) -> tuple[Any, PacketLines]: ...


def late_records(store: ProcessedStore) -> dict[str, list[CommitRecord]]:
    """Every late commit record, by table (listed once per invocation: rare)."""
    records: dict[str, list[CommitRecord]] = {}
    for key in store.list_keys(keys.LATE_COMMITS):
        record = CommitRecord.from_json(key, store.read(key) or b"")
        records.setdefault(record.table, []).append(record)
    return records


def packet_objects(source: IngestionSource, table: str, packet_id: int) -> list[str]:
    return [k for k in source.list_keys(keys.packet_prefix(table, packet_id)) if keys.is_packet_object(k)]


# Keys per LIST call when looking for a later packet (one page of S3's listing).
EVIDENCE_WINDOW = 1000
# The longest packet number the ingestion writes (_packet_number): lengths to look at.
MAX_DIGITS = 10


def evidence_calls_bound(packet_id: int) -> int:
    """The most LIST calls looking for evidence after `packet_id` makes: one page per
    leading digit and number length from `packet_id`'s own to MAX_DIGITS (9 x 7 = 63
    for a four-digit id), whatever the length of the table's history."""
    return 9 * (MAX_DIGITS - len(str(packet_id)) + 1)


def later_packet_with_objects(
    source: IngestionSource, evidence: dict[str, int], table: str, packet_id: int
) -> int | None:
    """A packet after `packet_id` that has objects in the bucket, named by an event or
    not: the only evidence that lets a packet be passed over (docs/design.md#input-layout).

    An event naming a packet is no evidence (a typo, a replayed test event, an early
    invoke): without objects of a later packet, the missing one may still arrive, so
    nothing is passed over.

    Keys sort as text and packet numbers are not zero-padded, so the packets after k
    are not the keys after k's: within one leading digit, a number sorts after every
    number it begins (`500` after `5009`), so shorter numbers sort among longer ones,
    and a later number may lie after hundreds of them. So the look goes by leading
    digit d and length L: a later packet of length L with leading digit d sorts after
    where `d` followed by L-1 zeros would (for k's own digit and length, right after
    k's keys), and only shorter numbers (never later ones) can sort between. One page
    of EVIDENCE_WINDOW keys per (d, L), nearest first; a page shorter than that has
    seen the rest of d's keys (longer lengths begin further on), and a page that
    reached past where the next length begins is continued from its last key, not
    read again. At most evidence_calls_bound(k) calls (usually 1; about 15 when
    nothing later exists in a history of thousands), whatever the length of the
    history. A later packet is missed only behind more pages of shorter numbers' keys
    than lengths are left (a four-digit one behind over 7,000 keys of the at most 111
    shorter packets of its digit: more than 60 objects per packet); the missing one
    then fails retryably, as if nothing later had arrived.
    `evidence` (table -> a later packet found with objects) remembers it for the run,
    so a run of missing packets costs nothing more.
    """
    known = evidence.get(table)
    if known is not None and known > packet_id:
        return known
    base = keys.packet_prefix(table, packet_id).removesuffix(f"{packet_id}_")
    seen_to: dict[str, str] = {}  # leading digit -> the last key read under it
    finished: set[str] = set()  # leading digits whose keys were all read from where it mattered
    for digit, start_after in _evidence_pages(str(packet_id)):
        if digit in finished:
            continue
        start_after = max(base + start_after, seen_to.get(digit, ""))
        page = source.list_after(base + digit, start_after, EVIDENCE_WINDOW)
        later = [n for n in (_packet_number(base, key) for key in page) if n is not None and n > packet_id]
        if later:
            evidence[table] = min(later)
            return evidence[table]
        if len(page) < EVIDENCE_WINDOW:
            finished.add(digit)
        else:
            seen_to[digit] = page[-1]
    return None


def _evidence_pages(digits: str):
    """(leading digit, StartAfter after the table's base) of each page that may hold a
    later packet, nearest first: right after k's keys; where the numbers one digit
    longer begin (9999 -> 10000); the rest of k's length; then every longer length."""
    n, own = len(digits), digits[0]
    # '`' sorts after '_' and the digits; '/' just before '0'.
    yield own, digits + "`"
    if n < MAX_DIGITS:
        yield "1", _before(1, n + 1)
    for d in range(int(own) + 1, 10):
        yield str(d), _before(d, n)
    for length in range(n + 1, MAX_DIGITS + 1):
        for d in range(1, 10):
            if (d, length) != (1, n + 1):
                yield str(d), _before(d, length)


def _before(digit: int, length: int) -> str:
    """Just before the first number of `length` digits that starts with `digit`."""
    return str(digit) if length == 1 else str(digit) + "0" * (length - 2) + "/"


def _packet_number(base: str, key: str) -> int | None:
    """The packet number of an ingestion object key under `base`, or None."""
    number, sep, _ = key[len(base):].partition("_")
    if not sep or not keys.is_packet_object(key) or not (number.isascii() and number.isdigit()):
        return None
    if number.startswith("0") or len(number) > 10:  # not how the ingestion numbers packets
        return None
    return int(number)
