"""The pending queue (docs/design.md#ordering: record first, then finish in arrival order).

Every named packet is recorded as pending, in one object per event, before any work,
and pending records are finished strictly in the order they arrived (their keys sort
in that order). Operators and the pipeline itself queue work the same way: a replay
of quarantined facts (numbered, claimed under _replays/, or named after the
dimension packet that may complete waiting facts) and a late packet.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from runtime import keys
from runtime.errors import CorruptRecordError, InvalidEventError
from runtime.events import PacketRef, parse_event
from runtime.observability import logger
from runtime.ports import ProcessedStore
from runtime.records import Pending, RunSummary

# A pending record may ask for a late packet to be processed: {"packets": [], "late":
# {"table": T, "id": k}} (runtime.operations late).
LATE = "late"
# A pending record may ask for a replay of the quarantined facts: {"packets": [],
# "replay": id}. An operator's replay is numbered (claimed under _replays/); a dimension
# packet that may complete waiting facts asks for one named after_{table}_packet_{k}.
REPLAY = "replay"


def list_pending(store: ProcessedStore) -> list[Pending]:
    """What earlier invocations recorded and did not finish, in arrival order:
    (its key, packets, the replay of quarantined facts asked for, the late packet
    asked for)."""
    pending = []
    for key in store.list_keys(keys.PENDING):  # key order is arrival order
        parsed = keys.parse_pending_key(key)
        data = store.read(key) if parsed is not None else None
        if data is None:
            logger.warning("ignoring an unexpected object under _pending/", extra={"key": key})
            continue
        try:
            body = json.loads(data)
            replay = body.pop(REPLAY, None)
            if replay is not None:
                replay = keys.replay_id(replay)
            late = body.pop(LATE, None)
            if late is not None:
                [late] = parse_event({"packets": [late]}).packets
            refs = parse_event(body).packets
        except (ValueError, AttributeError, InvalidEventError) as exc:
            raise CorruptRecordError(f"pending record {key} is unreadable: {exc}") from exc
        pending.append(Pending(key, refs, replay, late))
    return pending


def left_pending(store: ProcessedStore, consumed_of: Callable[[str], int]) -> list[str]:
    """What the pending records still ask for, in the order it will run: packet
    ranges `table:first..last`, late packets and replays."""
    left = []
    for pending in list_pending(store):
        for ref in pending.refs:
            first = consumed_of(ref.table) + 1
            if first <= ref.id:
                left.append(f"{ref.table}:{first}" + (f"..{ref.id}" if first < ref.id else ""))
        if pending.late is not None:
            left.append(f"late {pending.late}")
        if pending.replay is not None:
            left.append(f"replay:{pending.replay}")
    return left


def record_pending(
    store: ProcessedStore,
    refs: tuple[PacketRef, ...],
    earlier: list[Pending],
    summary: RunSummary,
    gaps: dict[tuple[str, int], bool],
    consumed_of: Callable[[str], int],
) -> bool:
    """Record the event's new packets as pending, in one object, before any work;
    False when none is new (all processed already, or pending already).

    A packet far ahead of the last one processed is never refused: the ones between
    are caught up first, over as many invocations as it takes (docs/design.md#backlog).

    One object per event, so a crash never leaves half an event recorded: the
    order packets will be processed in is fixed the moment it is written.
    """
    already_pending = {r for p in earlier for r in p.refs}
    todo = []
    for ref in refs:
        consumed = consumed_of(ref.table)
        if ref.id <= consumed and gaps.get((ref.table, ref.id)):
            pass  # a late packet: reported at ERROR by runtime.late.check_gaps, never "already processed"
        elif ref.id <= consumed and (ref.table, ref.id) in gaps:
            summary.already_processed.append(str(ref))
            logger.warning(
                "packet named again: it was passed over as missing and still has no objects",
                extra={"packet": str(ref), "consumed": consumed},
            )
        elif ref.id <= consumed:
            summary.already_processed.append(str(ref))
            logger.info(
                "packet already processed; skipped",
                extra={"packet": str(ref), "consumed": consumed},
            )
        elif ref not in already_pending:
            todo.append(ref)
    if not todo:
        return False
    seq = max((keys.parse_pending_key(p.key)[0] for p in earlier), default=0) + 1
    body = json.dumps({"packets": [{"table": r.table, "id": r.id} for r in todo]}).encode()
    store.put_if_absent(keys.pending_key(seq), body, {})
    return True


def queue_after(store: ProcessedStore, current: str, replay: str) -> None:
    """Queue a replay right after the pending record at hand (so it sees all of that
    record's packets, and runs before any later record, whatever arrived meanwhile),
    unless one is queued there already or this one ran."""
    seq, _ = keys.parse_pending_key(current)
    key = keys.pending_key(seq, replay_after=True)
    if store.read(key) is not None or any(store.read(k) is not None for k in keys.replay_commit_keys(replay)):
        return
    store.put_if_absent(key, json.dumps({"packets": [], REPLAY: replay}).encode(), {})
    logger.info("facts wait for dimensions that just arrived: replay queued", extra={"replay": replay})


def request_replay(store: ProcessedStore) -> int:
    """Ask for a replay of the quarantined facts (an operator's); returns its number.

    The number is claimed with a conditional put under _replays/ (never reused), then
    a pending record asks for it, so the next invocation runs it in turn, after the
    packets recorded before it, with the same commit steps as a packet.
    """
    claimed = [keys.parse_replay_claim(k) for k in store.list_keys(keys.REPLAY_CLAIMS)]
    replay = max((n for n in claimed if n is not None), default=0) + 1
    while not _claim(store, keys.replay_claim_key(replay), {"replay": replay}):
        replay += 1
    queue_replay(store, keys.replay_id(replay))
    return replay


def queue_replay(store: ProcessedStore, replay: str) -> None:
    """A pending record asking for replay `replay`, after every record there is."""
    _queue(store, {"packets": [], REPLAY: replay})


def queue_late(store: ProcessedStore, table: str, packet_id: int) -> str:
    """A pending record asking for late packet (table, packet_id), after every record
    there is; returns its key."""
    return _queue(store, {"packets": [], LATE: {"table": table, "id": packet_id}})


def _queue(store: ProcessedStore, body: dict) -> str:
    seqs = [keys.parse_pending_key(k) for k in store.list_keys(keys.PENDING)]
    seq = max((s[0] for s in seqs if s is not None), default=0) + 1
    while not _claim(store, keys.pending_key(seq), body):
        seq += 1  # an invocation took that number meanwhile: take the next
    return keys.pending_key(seq)


def _claim(store: ProcessedStore, key: str, body: dict) -> bool:
    try:
        return store.put_if_absent(key, json.dumps(body).encode(), {})
    except FileExistsError:
        return False
