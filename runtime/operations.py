"""What the on-call engineer runs: status, skip a poison packet, process a late packet,
redrive the dead-letter queue, replay quarantined facts.

    python -m runtime.operations status
    python -m runtime.operations skip --table sales_order --packet 12 --reason "..." --by alice
    python -m runtime.operations late --table sales_order --packet 8 [--function NAME]
    python -m runtime.operations redrive --queue-url URL --function NAME
    python -m runtime.operations replay [--function NAME]

The same environment as the Lambda (INGESTION_BUCKET, PROCESSED_BUCKET, SSM_PREFIX) and
ordinary AWS credentials. See docs/operations.md for when to use which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict

from runtime import keys
from runtime.errors import ProcessingError
from runtime.events import parse_event
from runtime.observability import logger
from runtime.pipeline import CommitRecord, committed_state_key, queue_late, request_replay
from runtime.ports import IngestionSource, PacketIds, ProcessedStore
from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES, SOURCES, consumed_parameter, produced_parameter


class OperationRefused(ProcessingError):
    """The operation would break an invariant; nothing was written."""


def status(store: ProcessedStore, ids: PacketIds, prefix: str) -> dict:
    """Packet ids, what is pending, and the quarantine files: the first look when paged."""
    pending = []
    for key in store.list_keys(keys.PENDING):
        data = store.read(key)
        pending.append(json.loads(data) | {"key": key} if data else {"key": key})
    return {
        # Passed over and not processed late: `late` once their objects have arrived.
        "open_gaps": [f"{t}:{k}" for t, k in filter(None, map(keys.parse_gap_key, store.list_keys(keys.GAPS)))],
        "consumed": {t.name: ids.read_packet_id(consumed_parameter(prefix, t.name)) for t in SOURCE_TABLES},
        "produced": {o: ids.read_packet_id(produced_parameter(prefix, o)) for o in OUTPUT_TABLES},
        "pending": pending,
        "quarantine_files": store.list_keys(keys.QUARANTINE),
    }


def skip(
    store: ProcessedStore, ids: PacketIds, prefix: str, table: str, packet_id: int, reason: str, by: str
) -> CommitRecord:
    """Commit packet (table, packet_id) as passed over, deliberately, with no outputs.

    Only the next packet of its table can be skipped, and only while none of its
    outputs was written: the next invocation then finishes the commit (the ids move
    on, as for any commit record) and processing resumes after it.
    """
    if table not in SOURCES:
        raise OperationRefused(f"{table!r} is not a consumed source table")
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
    store.put_if_absent(commit_key, record.to_json(), {"source": f"{table}:{packet_id}", "rows": "0"})
    logger.warning("packet skipped by an operator", extra={"packet": f"{table}:{packet_id}", "skip": record.skipped})
    return record


def late(store: ProcessedStore, ingestion: IngestionSource, table: str, packet_id: int) -> str:
    """Ask for a passed-over packet whose objects have arrived to be processed late.

    Records the request as pending (after everything pending now), so the next
    invocation processes it in turn with the same commit steps as any packet, and its
    own commit record (`_commits/late/`) makes it happen once. Refused unless the
    packet was passed over, has objects now, and is neither processed late nor asked
    for already. Returns the pending record's key.
    """
    if table not in SOURCES:
        raise OperationRefused(f"{table!r} is not a consumed source table")
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
    key = queue_late(store, table, packet_id)
    logger.warning("late packet processing requested", extra={"packet": name, "pending": key})
    return key


def redrive(sqs, queue_url: str, invoke: Callable[[dict], None], max_messages: int = 1000) -> list[dict]:
    """Re-invoke the events parked in the dead-letter queue, oldest first.

    Each message is the on-failure destination record; its `requestPayload` is the
    original event. A message is deleted only after its event was handed back to the
    function, so a redrive interrupted halfway can simply be run again; an event
    invoked twice is harmless (packets already processed are skipped).
    """
    redriven, seen = [], set()
    while len(redriven) < max_messages:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=60).get("Messages", [])
        batch = [m for m in batch if m["MessageId"] not in seen]
        if not batch:
            break
        for message in batch:
            seen.add(message["MessageId"])
            event = json.loads(message["Body"]).get("requestPayload")
            try:
                parse_event(event)
            except ProcessingError as exc:
                # A malformed event stays parked: redriving it would only fail again.
                logger.error("dead-letter message holds no valid event; left in the queue",
                             extra={"message_id": message["MessageId"], "error": str(exc)})
                continue
            invoke(event)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            logger.info("redriven", extra={"message_id": message["MessageId"], "event": event})
            redriven.append(event)
    return redriven


def main(argv: list[str] | None = None) -> int:
    import boto3

    from runtime.adapters.aws import CLIENT_CONFIG
    from runtime.adapters.s3 import S3Bucket
    from runtime.adapters.ssm import SsmPacketIds
    from runtime.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m runtime.operations", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="packet ids, pending packets, quarantine files")
    skip_cmd = commands.add_parser("skip", help="pass over the packet holding its table back")
    skip_cmd.add_argument("--table", required=True)
    skip_cmd.add_argument("--packet", type=int, required=True)
    skip_cmd.add_argument("--reason", required=True)
    skip_cmd.add_argument("--by", required=True, help="who decided (recorded)")
    late_cmd = commands.add_parser("late", help="process a passed-over packet whose objects arrived")
    late_cmd.add_argument("--table", required=True)
    late_cmd.add_argument("--packet", type=int, required=True)
    late_cmd.add_argument("--function", help="invoke this function now to run it (else: the next invocation)")
    redrive_cmd = commands.add_parser("redrive", help="re-invoke the events in the dead-letter queue")
    redrive_cmd.add_argument("--queue-url", required=True)
    redrive_cmd.add_argument("--function", required=True, help="name or ARN of the processing function")
    replay_cmd = commands.add_parser("replay", help="re-offer the quarantined facts to today's dimensions")
    replay_cmd.add_argument("--function", help="invoke this function now to run it (else: the next invocation)")
    args = parser.parse_args(argv)

    session = boto3.session.Session()
    lambda_client = session.client("lambda", config=CLIENT_CONFIG)

    def invoke(event: dict) -> None:
        lambda_client.invoke(FunctionName=args.function, InvocationType="Event", Payload=json.dumps(event))

    if args.command == "redrive":
        done = redrive(session.client("sqs", config=CLIENT_CONFIG), args.queue_url, invoke)
        print(json.dumps({"redriven": done}, indent=1))
        return 0

    settings = Settings.from_env(os.environ)
    store = S3Bucket(session.client("s3", config=CLIENT_CONFIG), settings.processed_bucket)
    ids = SsmPacketIds(session.client("ssm", config=CLIENT_CONFIG))
    try:
        if args.command == "status":
            print(json.dumps(status(store, ids, settings.ssm_prefix), indent=1))
        elif args.command == "late":
            ingestion = S3Bucket(session.client("s3", config=CLIENT_CONFIG), settings.ingestion_bucket)
            key = late(store, ingestion, args.table, args.packet)
            if args.function:
                invoke({"packets": []})
            print(f"{args.table}:{args.packet} is pending as {key}; it is processed in the "
                  + ("invocation just started." if args.function else "next invocation."), file=sys.stderr)
        elif args.command == "replay":
            replay = request_replay(store)
            logger.info("replay of quarantined facts requested", extra={"replay": replay})
            if args.function:
                invoke({"packets": []})
            print(f"replay {replay} is pending; it runs in the "
                  + ("invocation just started." if args.function else "next invocation."), file=sys.stderr)
        else:
            record = skip(store, ids, settings.ssm_prefix, args.table, args.packet, args.reason, args.by)
            print(json.dumps(asdict(record), indent=1))
            print("committed as skipped; the next invocation moves the ids on. "
                  "Invoke the function with {\"packets\": []} to resume now.", file=sys.stderr)
    except ProcessingError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
