"""What the on-call commands do, without I/O of their own: status, skip, late, redrive,
replay, and the quarantine and dead-letter views (docs/design.md#operations).

Every command that changes something takes `dry_run`: it then runs every check the
real command runs and returns what it would do, writing nothing. The command line
(runtime/operations.py) composes these with the AWS clients and prints them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from runtime import keys
from runtime.errors import ProcessingError
from runtime.events import parse_event
from runtime.observability import logger
from runtime.pending import list_pending, queue_late, request_replay
from runtime.pipeline import CommitRecord, committed_state_key
from runtime.ports import IngestionSource, PacketIds, ProcessedStore
from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES, SOURCES, consumed_parameter, produced_parameter
from runtime.validation import WAITS_FOR
from runtime.waits import REPLAYED_TABLES, live_quarantine
from runtime.waits import open_waits as list_open_waits

# A quarantine line's own keys (runtime/validation.py): not the source row's columns.
REASONS = "_reasons"


class OperationRefused(ProcessingError):
    """The operation would break an invariant; nothing was written."""


# --- status ---------------------------------------------------------------------------


def status(store: ProcessedStore, ids: PacketIds, prefix: str) -> dict:
    """Packet ids, what is pending (in the order it will run) and what holds it back,
    the open gaps, and the quarantine still open: the first look when paged."""
    consumed = {t.name: ids.read_packet_id(consumed_parameter(prefix, t.name)) for t in SOURCE_TABLES}
    pending = []
    for record in list_pending(store):
        entry: dict = {"key": record.key, "packets": [str(r) for r in record.refs]}
        if record.replay is not None:
            entry["replay"] = record.replay
        if record.late is not None:
            entry["late"] = str(record.late)
        pending.append(entry)
    return {
        "consumed": consumed,
        "produced": {o: ids.read_packet_id(produced_parameter(prefix, o)) for o in OUTPUT_TABLES},
        "pending": pending,
        "blocking": blocking_packet(list_pending(store), consumed),
        # Passed over and not processed late: `late` once their objects have arrived.
        "open_gaps": [f"{t}:{k}" for t, k in filter(None, map(keys.parse_gap_key, store.list_keys(keys.GAPS)))],
        "quarantine_files": open_quarantine_files(store),
        "open_waits": open_waits(store),
    }


def blocking_packet(pending: list, consumed: dict[str, int]) -> str | None:
    """The packet the next invocation starts with: the first of the oldest pending
    record (or that record's replay or late packet). A packet that fails every time
    holds back everything behind it on purpose (docs/design.md#ordering)."""
    for record in pending:
        for ref in record.refs:
            if ref.id > consumed.get(ref.table, 0):
                # Packets between the consumed id and the one named are caught up first.
                return f"{ref.table}:{consumed.get(ref.table, 0) + 1}"
        if record.late is not None:
            return f"late {record.late}"
        if record.replay is not None:
            return f"replay {record.replay}"
    return None


# --- quarantine -----------------------------------------------------------------------


def open_quarantine_files(store: ProcessedStore) -> list[str]:
    """Quarantine files still open: every dimension's, and the facts' no replay took.

    A fact file a replay took is resolved: its rows were written, skipped or moved to
    the replay's own file, so it is not listed again."""
    live = set(live_quarantine(store, None))
    facts = {keys.quarantine_prefix(t) for t in REPLAYED_TABLES}
    return [k for k in store.list_keys(keys.QUARANTINE) if k in live or not any(k.startswith(f) for f in facts)]


def open_waits(store: ProcessedStore) -> dict[str, dict]:
    """Per fact table, the rows still waiting for a dimension key, the keys they need
    and since when: the runtime's own list of open waits (runtime/waits.py), resolved
    ones never (docs/design.md#waits-and-replays)."""
    waits: dict[str, dict] = {}
    for wait in list_open_waits(store):
        entry = waits.setdefault(wait.table, {"rows": 0, "needs": {}, "oldest_since": wait.since.isoformat()})
        entry["rows"] += 1
        entry["oldest_since"] = min(entry["oldest_since"], wait.since.isoformat())
        for dimension, needed in wait.waits_for.items():
            entry["needs"].setdefault(dimension, set()).add(str(needed))
    for entry in waits.values():
        entry["needs"] = {d: sorted(v, key=_natural) for d, v in sorted(entry["needs"].items())}
    return waits


def quarantine_summary(store: ProcessedStore) -> dict[str, dict]:
    """Per output table: open files, rows, rows waiting, and the reasons counted."""
    summary: dict[str, dict] = {}
    for key in open_quarantine_files(store):
        table = key.split("/")[1]
        entry = summary.setdefault(table, {"files": 0, "rows": 0, "waiting": 0, "reasons": Counter()})
        entry["files"] += 1
        for row in _rows(store, key):
            entry["rows"] += 1
            entry["waiting"] += isinstance(row.get(WAITS_FOR), dict)
            for reason in row.get(REASONS) or ["(no reason recorded)"]:
                entry["reasons"][str(reason)] += 1
    for entry in summary.values():
        entry["reasons"] = dict(entry["reasons"].most_common())
    return summary


def quarantine_rows(store: ProcessedStore, key: str, limit: int) -> list[dict]:
    data = store.read(key)
    if data is None:
        raise OperationRefused(f"{ascii(key)} does not exist (`quarantine` lists the open files)")
    return _rows_of(data)[:limit]


def _rows(store: ProcessedStore, key: str) -> list[dict]:
    return _rows_of(store.read(key) or b"")


def _rows_of(data: bytes) -> list[dict]:
    rows = []
    for line in data.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            row = {"_raw": line[:200].decode("utf-8", "replace"), REASONS: ["unreadable quarantine line"]}
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _natural(text: str) -> tuple:
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


# --- skip, late, replay ---------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a command did, or with dry_run what it would do; `done` tells which."""

    action: str
    detail: dict = field(default_factory=dict)
    done: bool = False

    def to_dict(self) -> dict:
        return {"action": self.action, "done": self.done, **self.detail}


def skip(
    store: ProcessedStore, ids: PacketIds, prefix: str, table: str, packet_id: int, reason: str, by: str,
    dry_run: bool = False,
) -> CommitRecord | Plan:
    """Commit packet (table, packet_id) as passed over, deliberately, with no outputs.

    Only the next packet of its table can be skipped, and only while none of its
    outputs was written: the next invocation then finishes the commit (the ids move
    on, as for any commit record) and processing resumes after it.
    """
    if table not in SOURCES:
        raise OperationRefused(f"{ascii(table)[:80]} is not a consumed source table")
    if not reason.strip() or not by.strip():
        raise OperationRefused("a skip needs a --reason and a --by: it is recorded for good")
    consumed = ids.read_packet_id(consumed_parameter(prefix, table))
    if packet_id != consumed + 1:
        raise OperationRefused(
            f"{table}:{packet_id} is not the next packet of {table} (the last processed is "
            f"{consumed}); only the packet holding the others back can be skipped"
        )
    commit_key = keys.commit_key(table, packet_id)
    if store.read(commit_key) is not None:
        raise OperationRefused(f"{commit_key} exists: the packet is committed already")
    for output in SOURCES[table].outputs:
        n = ids.read_packet_id(produced_parameter(prefix, output)) + 1
        written = store.list_keys(keys.output_packet_prefix(output, n))
        if written:
            raise OperationRefused(
                f"{written[0]} exists without a commit record: an attempt got as far as writing "
                "outputs, so this is not an unreadable packet; find out why it failed instead"
            )
    record = CommitRecord(
        table, packet_id, state=committed_state_key(store, ids, prefix, table), missing=True,
        skipped={"reason": reason, "by": by},
    )
    if dry_run:
        return Plan("skip", {"packet": f"{table}:{packet_id}", "would_write": commit_key,
                             "record": asdict(record)})
    store.put_if_absent(commit_key, record.to_json(), {"source": f"{table}:{packet_id}", "rows": "0"})
    logger.warning("packet skipped by an operator", extra={"packet": f"{table}:{packet_id}", "skip": record.skipped})
    return record


def late(
    store: ProcessedStore, ingestion: IngestionSource, table: str, packet_id: int, dry_run: bool = False
) -> str:
    """Ask for a passed-over packet whose objects have arrived to be processed late.

    Records the request as pending (after everything pending now), so the next
    invocation processes it in turn with the same commit steps as any packet, and its
    own commit record (`_commits/late/`) makes it happen once. Refused unless the
    packet was passed over, has objects now, and is neither processed late nor asked
    for already. Returns the pending record's key (with dry_run: "" and nothing written).
    """
    if table not in SOURCES:
        raise OperationRefused(f"{ascii(table)[:80]} is not a consumed source table")
    name = f"{table}:{packet_id}"
    passed = store.read(keys.commit_key(table, packet_id))
    if passed is None or not CommitRecord.from_json(keys.commit_key(table, packet_id), passed).missing:
        raise OperationRefused(f"{name} was not passed over (no commit record as missing): nothing to do late")
    if store.read(keys.late_commit_key(table, packet_id)) is not None:
        raise OperationRefused(f"{name} was processed late already ({keys.late_commit_key(table, packet_id)})")
    if not [k for k in ingestion.list_keys(keys.packet_prefix(table, packet_id)) if keys.is_packet_object(k)]:
        raise OperationRefused(f"{name} still has no objects under {keys.packet_prefix(table, packet_id)!r}")
    for key in store.list_keys(keys.PENDING):
        if json.loads(store.read(key) or b"{}").get("late") == {"table": table, "id": packet_id}:
            raise OperationRefused(f"{name} is pending late processing already ({key})")
    if dry_run:
        return ""
    key = queue_late(store, table, packet_id)
    logger.warning("late packet processing requested", extra={"packet": name, "pending": key})
    return key


def replay(store: ProcessedStore, dry_run: bool = False) -> Plan:
    """Ask for a replay of the quarantined facts, if any fact file is still open.

    With nothing open there is nothing to offer again: no replay number is claimed."""
    files = live_quarantine(store, None)
    if not files:
        return Plan("replay", {"files": [], "note": "nothing to replay: no fact quarantine file is open"})
    if dry_run:
        return Plan("replay", {"files": files})
    number = request_replay(store)
    logger.info("replay of quarantined facts requested", extra={"replay": number})
    return Plan("replay", {"files": files, "replay": number}, done=True)


# --- the dead-letter queue ------------------------------------------------------------


def dlq_messages(sqs, queue_url: str, max_messages: int = 1000) -> list[dict]:
    """The messages in the dead-letter queue, each with the event it holds and why it
    failed; nothing is deleted. Each message is hidden for a few seconds while it is
    read, then made visible again."""
    found, seen = [], set()
    while len(found) < max_messages:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=30, AttributeNames=["SentTimestamp"]).get("Messages", [])
        batch = [m for m in batch if m["MessageId"] not in seen]
        if not batch:
            break
        for message in batch:
            seen.add(message["MessageId"])
            found.append(describe_message(message))
    for message in found:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message.pop("receipt"), VisibilityTimeout=0)
    return found


def describe_message(message: dict) -> dict:
    """One on-failure destination record: the event, the condition, the error."""
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    context = body.get("requestContext") or {}
    response = body.get("responsePayload") or {}
    event = body.get("requestPayload")
    try:
        parse_event(event)
        valid = True
    except ProcessingError:
        valid = False
    return {
        "message_id": message["MessageId"],
        "receipt": message["ReceiptHandle"],
        "sent": message.get("Attributes", {}).get("SentTimestamp"),
        "event": event,
        "valid_event": valid,
        "condition": context.get("condition"),
        "attempts": context.get("approximateInvokeCount"),
        "error": (f"{response.get('errorType', '')}: {response.get('errorMessage', '')}".strip(": ")
                  if isinstance(response, dict) else str(response)) or None,
    }


def redrive(
    sqs, queue_url: str, invoke: Callable[[dict], None], max_messages: int = 1000, dry_run: bool = False
) -> list[dict]:
    """Re-invoke the events parked in the dead-letter queue, oldest first.

    Each message is the on-failure destination record; its `requestPayload` is the
    original event. A message is deleted only after its event was handed back to the
    function, so a redrive interrupted halfway can simply be run again; an event
    invoked twice is harmless (packets already processed are skipped). With dry_run,
    the events that would be re-invoked, and nothing invoked or deleted.
    """
    if dry_run:
        return [m["event"] for m in dlq_messages(sqs, queue_url, max_messages) if m["valid_event"]]
    redriven, seen = [], set()
    while len(redriven) < max_messages:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=60).get("Messages", [])
        batch = [m for m in batch if m["MessageId"] not in seen]
        if not batch:
            break
        for message in batch:
            seen.add(message["MessageId"])
            described = describe_message(message)
            if not described["valid_event"]:
                # A malformed event stays parked: redriving it would only fail again.
                logger.error("dead-letter message holds no valid event; left in the queue",
                             extra={"message_id": message["MessageId"]})
                continue
            invoke(described["event"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            logger.info("redriven", extra={"message_id": message["MessageId"], "event": described["event"]})
            redriven.append(described["event"])
    return redriven
