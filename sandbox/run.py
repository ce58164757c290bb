"""`make run`: the real Lambda handler on the real fixture rows, against moto's server.

Starts moto on 127.0.0.1, creates the buckets and packet-id parameters as the stack
would, uploads all eleven fixture tables as ingestion packets (the large ones split into
several packets, payments as an unpaid and then a paid version, as successive ingestion
runs would write them), invokes `lambda_handler` once per ingestion run, then shows
what was written and downloads the Parquet to out/.

`--keep` (`make sandbox`) leaves moto's server up with the run's data, a dead-letter
queue and a stand-in stack `TotesysProcessing-sandbox` whose outputs name them, and
prints the `export` lines that point the on-call commands at it (also in
out/sandbox.env): `python -m runtime.operations --stage sandbox status` then works as
against a deployed stage. `--invoke EVENT` runs the handler once against that sandbox,
as Lambda would, and on failure parks the event in its dead-letter queue as Lambda's
on-failure destination does after the last retry. `--stop` stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

# pandera warns about the installed typeguard at import; nothing here uses what it concerns.
warnings.filterwarnings("ignore", message="Using typeguard < 3", category=UserWarning)

import boto3
import pyarrow.parquet as pq

from runtime import handler, keys
from runtime.observability import logger
from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES
from sandbox.emulator import moto_server
from sandbox.seed import (
    LocalStack,
    create_resources,
    fixture_lines,
    packet_key,
    payment_versions,
    split,
    upload_packet,
)

ROOT = Path(__file__).resolve().parent.parent


def say(message: str = "") -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="where to put the Parquet files and logs")
    parser.add_argument("--sales-packets", type=int, default=4, help="split sales_order into this many packets")
    parser.add_argument(
        "--bad-rows", action="store_true",
        help="append a few broken sales orders to the last packet, to see the quarantine at work",
    )
    parser.add_argument("--keep", action="store_true",
                        help="leave moto's server up with the data, for the on-call commands (make sandbox)")
    parser.add_argument("--invoke", metavar="EVENT", help="run the handler once on EVENT against a kept sandbox")
    parser.add_argument("--stop", action="store_true", help="stop a kept sandbox")
    parser.add_argument("--upload", metavar="TABLE:ID",
                        help="put packet ID of TABLE into a kept sandbox's ingestion bucket (5 fixture rows)")
    parser.add_argument("--truncated", action="store_true", help="with --upload: a broken .jsonl.gz instead")
    parser.add_argument("--unknown-staff", action="store_true",
                        help="with --upload sales_order:ID: rows of a staff member never sent (they wait)")
    parser.add_argument("--redrive", action="store_true",
                        help="redrive a kept sandbox's dead-letter queue through the handler (no Lambda here)")
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.invoke is not None:
        return invoke_sandbox(args.invoke, out / "handler.log.jsonl")
    if args.upload is not None:
        return upload_to_sandbox(args.upload, args.truncated, args.unknown_staff)
    if args.redrive:
        from runtime.operations import redrive

        def run(event: dict) -> None:
            invoke_sandbox(json.dumps(event), out / "handler.log.jsonl")

        done = redrive(boto3.client("sqs"), os.environ["DEAD_LETTER_QUEUE_URL"], run)
        say(f"redriven: {json.dumps(done)}")
        return 0
    stop_sandbox(out)
    if args.stop:
        return 0
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log_path = out / "handler.log.jsonl"

    say("1/5 starting moto's server (the local AWS) on 127.0.0.1 ...")
    with moto_server(keep=args.keep, log=str(out / "moto.log") if args.keep else None) as server:
        say(f"    listening on {server.endpoint}")
        names = LocalStack()
        os.environ.update({**server.env(), **names.env(), "LOG_LEVEL": "INFO"})
        handler.reset()
        s3 = boto3.client("s3")
        ssm = boto3.client("ssm")

        say("2/5 creating the buckets and the packet-id parameters, as the stack does")
        create_resources(s3, ssm, names)

        say("3/5 uploading the fixture rows as ingestion packets")
        events = _upload(s3, names, args.sales_packets, args.bad_rows)

        say(f"4/5 invoking lambda_handler for {len(events)} ingestion runs (logs: {_rel(log_path)})")
        failures = _invoke(events, log_path)

        say("5/5 what the processed bucket holds now")
        _show(s3, ssm, names, out, log_path)
        if args.keep:
            _keep(server, names, out)
    return 1 if failures else 0


SANDBOX_STAGE = "sandbox"
SANDBOX_FUNCTION = "totesys-sandbox-processing"


def _keep(server, names: LocalStack, out: Path) -> None:
    """The dead-letter queue and the stand-in stack, then the exports for the commands."""
    queue_url = boto3.client("sqs").create_queue(QueueName="totesys-sandbox-dlq")["QueueUrl"]
    outputs = {"IngestionBucketName": names.ingestion_bucket, "ProcessedBucketName": names.processed_bucket,
               "SsmPrefix": names.ssm_prefix, "DeadLetterQueueUrl": queue_url, "FunctionName": SANDBOX_FUNCTION}
    template = {"Resources": {"Sandbox": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName=f"TotesysProcessing-{SANDBOX_STAGE}",
                                                TemplateBody=json.dumps(template))
    exports = {**server.env(), **names.env(), "DEAD_LETTER_QUEUE_URL": queue_url}
    lines = [f"export {k}={v}" for k, v in exports.items()]
    (out / "sandbox.env").write_text("\n".join(lines) + "\n")
    (out / "sandbox.pid").write_text(f"{server.process.pid}\n")
    say()
    say(f"the sandbox stays up (moto's server, pid {server.process.pid}, log {_rel(out / 'moto.log')}).")
    say("point the on-call commands at it (or: source " + _rel(out / "sandbox.env") + "):")
    say()
    for line in lines:
        say(f"  {line}")
    say()
    say(f"  .venv/bin/python -m runtime.operations --stage {SANDBOX_STAGE} status")
    say("  .venv/bin/python -m sandbox.run --invoke '{\"packets\": []}'   # the function, run once")
    say("  make sandbox-stop                                              # when done")


def stop_sandbox(out: Path) -> None:
    """Stop the moto server a kept sandbox left (by the pid it recorded, if it is ours)."""
    pid_file = out / "sandbox.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip() or 0)
    pid_file.unlink()
    try:
        if b"moto.server" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
            say(f"stopped the sandbox's moto server (pid {pid})")
    except OSError:
        pass  # gone already


def upload_to_sandbox(packet: str, truncated: bool, unknown_staff: bool = False) -> int:
    """Packet `table:id` in the sandbox's ingestion bucket: 5 rows of the table's
    fixture (re-sent rows, as an ingestion's boundary rows are), or a broken object."""
    table, _, packet_id = packet.partition(":")
    bucket = os.environ.get("INGESTION_BUCKET", "")
    if not bucket or not packet_id.isdigit():
        print("usage: --upload TABLE:ID, with the sandbox's exports (source out/sandbox.env)", file=sys.stderr)
        return 2
    s3 = boto3.client("s3")
    if truncated:
        key = packet_key(table, int(packet_id), [], gz=True)
        s3.put_object(Bucket=bucket, Key=key, Body=b"\x1f\x8b truncated upload")
    else:
        lines = fixture_lines(table)[-5:]
        if unknown_staff:  # new orders of staff 9999, whom the staff table never sends
            lines = [re.sub(rb'"staff_id": \d+', b'"staff_id": 9999', re.sub(rb'"sales_order_id": (\d+)',
                     lambda m: b'"sales_order_id": ' + str(int(m.group(1)) + 100_000).encode(), line))
                     for line in lines]
        key = upload_packet(s3, bucket, table, int(packet_id), lines)
    say(f"s3://{bucket}/{key}")
    return 0


def invoke_sandbox(raw_event: str, log_path: Path) -> int:
    """The handler once, against the sandbox in the environment, as Lambda runs it; a
    failure is parked in the dead-letter queue as after Lambda's last retry."""
    if not os.environ.get("AWS_ENDPOINT_URL") or not os.environ.get("DEAD_LETTER_QUEUE_URL"):
        print("no sandbox in the environment: run `make sandbox`, then `source out/sandbox.env`", file=sys.stderr)
        return 2
    event = json.loads(raw_event)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "a") as log, contextlib.redirect_stdout(log):
            logger.registered_handler.setStream(log)
            try:
                result = handler.lambda_handler(event, None)
            finally:
                logger.registered_handler.setStream(sys.stderr)
    except Exception as exc:  # shown in one line, and parked as Lambda would
        record = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
                  "requestPayload": event, "responseContext": {"functionError": "Unhandled"},
                  "responsePayload": {"errorType": type(exc).__name__, "errorMessage": str(exc)[:1000]}}
        boto3.client("sqs").send_message(QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"], MessageBody=json.dumps(record))
        print(f"invocation failed: {type(exc).__name__}: {str(exc)[:300]} (parked in the dead-letter queue)",
              file=sys.stderr)
        return 1
    print(json.dumps(result))
    print(f"(its log lines: {_rel(log_path)})", file=sys.stderr)
    return 0


def _packets(sales_packets: int, bad_rows: bool) -> dict[str, list[list[bytes]]]:
    """Each source table's fixture rows as the ingestion packets successive runs write."""
    packets = {s.name: [fixture_lines(s.name)] for s in SOURCE_TABLES}
    packets["transaction"] = split(fixture_lines("transaction"), 2)
    packets["sales_order"] = split(fixture_lines("sales_order"), sales_packets)
    packets["purchase_order"] = split(fixture_lines("purchase_order"), 2)
    # First every payment unpaid, then the versions whose `paid` turned true.
    packets["payment"] = list(payment_versions(fixture_lines("payment")))
    if bad_rows:
        packets["sales_order"][-1] = packets["sales_order"][-1] + [
            b'{"sales_order_id": 99001, "created_at": "2024-11-14T10:00:00"\n',
            b'{"sales_order_id": 99002, "created_at": "2024-11-14T10:00:00", "last_updated": '
            b'"2024-11-14T10:00:00", "design_id": 3, "staff_id": 999, "counterparty_id": 8, '
            b'"units_sold": 10, "unit_price": "2.999", "currency_id": 2, "agreed_delivery_date": '
            b'"2024-11-20", "agreed_payment_date": "2024-11-21", "agreed_delivery_location_id": 8}\n',
        ]
    return packets


# Payments arrive one run later than the rest: their transactions come in two packets.
_RUN_OFFSET = {"payment": 1}


def _upload(s3, names: LocalStack, sales_packets: int, bad_rows: bool) -> list[dict]:
    """Upload every packet; the events name packet k of a table in ingestion run k."""
    runs: dict[int, list[dict]] = {}
    for table, parts in _packets(sales_packets, bad_rows).items():
        for k, lines in enumerate(parts, start=1):
            key = upload_packet(s3, names.ingestion_bucket, table, k, lines)
            say(f"    {key}  ({len(lines):,} rows)")
            runs.setdefault(k + _RUN_OFFSET.get(table, 0), []).append({"table": table, "id": k})
    events = [{"packets": runs[i]} for i in sorted(runs)]
    # The ingestion invokes again after a retry of its own: nothing must change.
    events.append(events[0])
    return events


def _invoke(events: list[dict], log_path: Path) -> int:
    failures = 0
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
        logger.registered_handler.setStream(log)
        try:
            for i, event in enumerate(events, start=1):
                named = ", ".join(f"{p['table']}:{p['id']}" for p in event["packets"])
                started = time.perf_counter()
                try:
                    result = handler.lambda_handler(event, None)
                except Exception as exc:  # shown, and the run exits non-zero
                    failures += 1
                    print(f"    run {i}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                took = time.perf_counter() - started
                written = ", ".join(f"{t} {n:,}" for t, n in result["rows_written"].items()) or "nothing new"
                note = f" (already processed: {', '.join(result['already_processed'])})" if result["already_processed"] else ""
                print(f"    run {i}/{len(events)} [{named}] {took:.2f}s: wrote {written}{note}", file=sys.stderr)
        finally:
            logger.registered_handler.setStream(sys.stdout)
    return failures


def _show(s3, ssm, names: LocalStack, out: Path, log_path: Path) -> None:
    reports: dict[str, list[dict]] = {}
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if "validation" in record:
            reports.setdefault(record["validation"]["table"], []).append(record["validation"])

    say(f"    {'table':<21}{'packets':>8}{'rows':>9}{'rejected':>10}  produced id")
    for table in OUTPUT_TABLES:
        objects = _keys(s3, names.processed_bucket, f"{table}/")
        rows = 0
        for key in objects:
            path = out / key
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(names.processed_bucket, key, str(path))
            rows += pq.read_metadata(path).num_rows
        rejected = sum(r["rows_rejected"] for r in reports.get(table, []))
        produced = ssm.get_parameter(Name=f"{names.ssm_prefix}/produced/{table}")["Parameter"]["Value"]
        say(f"    {table:<21}{len(objects):>8}{rows:>9,}{rejected:>10}  {produced}")
    say()
    say("    objects written (Parquet downloaded under " + _rel(out) + "/):")
    for table in OUTPUT_TABLES:
        for key in _keys(s3, names.processed_bucket, f"{table}/"):
            say(f"      s3://{names.processed_bucket}/{key}")
    quarantined = _keys(s3, names.processed_bucket, keys.QUARANTINE)
    if quarantined:
        say("    quarantined rows (downloaded too):")
        for key in quarantined:
            path = out / key
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(names.processed_bucket, key, str(path))
            say(f"      s3://{names.processed_bucket}/{key}")
            for line in path.read_text().splitlines()[:3]:
                say(f"        {line[:160]}")
    consumed = {
        s.name: ssm.get_parameter(Name=f"{names.ssm_prefix}/consumed/{s.name}")["Parameter"]["Value"]
        for s in SOURCE_TABLES
    }
    say("    consumed ids: " + ", ".join(f"{t}={v}" for t, v in consumed.items()))
    say()
    say("    validation reports (one JSON log line per table and source packet):")
    for table in OUTPUT_TABLES:
        for report in reports.get(table, []):
            checks = "; ".join(
                f"{c['column']}: {c['check']} x{c['count']} e.g. {c['examples']}" for c in report["failed_checks"]
            )
            say(
                f"      {table:<21} from {report['source_packet']:<18} in {report['rows_in']:>6,}"
                f"  written {report['rows_written']:>6,}  rejected {report['rows_rejected']:>3}"
                f"  skipped {report['rows_skipped']:>3}" + (f"  [{checks}]" if checks else "")
            )


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(o["Key"] for o in page.get("Contents", ()))
    return sorted(found)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
