"""`make rebuild`: the rebuild workflow run locally, in moto's Step Functions interpreter.

Starts the emulator in-process (moto), uploads the fixture tables as a history of many
ingestion packets, processes them the live way (the real handler, packet by packet) into
the live bucket, then runs the rebuild state machine (cdk_app/rebuild_workflow.py) into a
new generation bucket, its Lambda being the real handler in-process, and shows its
progress: items staged / total, rows/s, time left; then the commit and the report, and
the two warehouses side by side. docs/rebuild.md says what moto runs and what it cannot.
"""

from __future__ import annotations

import os

# jsii (the CDK, for the workflow's definition) prints an end-of-life banner under Node 20.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

import argparse  # noqa: E402
import contextlib
import copy
import io
import json
import sys
import time
from collections.abc import Iterator

import boto3
import pyarrow.parquet as pq

from cdk_app.rebuild_workflow import FUNCTION_ARN, definition
from runtime import handler
from runtime.observability import logger
from runtime.rebuild import entry
from runtime.rebuild.plan import ITEMS_KEY
from runtime.rebuild.report import REPORT_KEY
from runtime.rebuild.staging import STAGED
from runtime.tables import FACTS, OUTPUT_TABLES, SOURCE_TABLES, consumed_parameter
from sandbox.emulator import LOCAL_AWS_ENV
from sandbox.seed import fixture_lines, packet_key, payment_versions, split

REGION = LOCAL_AWS_ENV["AWS_DEFAULT_REGION"]
INGESTION, LIVE = "totesys-ingestion-local", "totesys-processed-local"
TARGET, TARGET_PREFIX = "totesys-local-generation-g2", "/totesys/local/generations/g2"
LIVE_PREFIX = "/totesys/local/processing"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def say(message: str = "") -> None:
    print(message, flush=True)


def runnable_by_moto(asl: dict) -> dict:
    """The definition with the one part moto 5.2.5's ASL parser lacks, the ItemBatcher,
    replaced by an ItemSelector giving each item the shape of a batch of one; and the
    tolerated failure percentage written as a decimal, the only form its grammar takes."""
    asl = copy.deepcopy(asl)
    stage = asl["States"]["StageFacts"]
    batcher = stage.pop("ItemBatcher")
    stage["ItemSelector"] = {"Items.$": "States.Array($$.Map.Item.Value)", "BatchInput": batcher["BatchInput"]}
    stage["ToleratedFailurePercentage"] = float(stage["ToleratedFailurePercentage"])
    return asl


class LambdaContext:
    """What Lambda hands the handler: the time left of a 15-minute call."""

    def __init__(self) -> None:
        self._deadline = time.monotonic() + 900
        self.aws_request_id = "in-process"
        self.function_name = "rebuild"

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


@contextlib.contextmanager
def in_process_lambda(calls: list | None = None) -> Iterator[None]:
    """moto's Lambda without Docker answers an invoke with the payload, running nothing:
    here an invoke runs `runtime.handler.lambda_handler` in this process instead."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        event = json.loads(body) if body else {}
        if calls is not None:
            calls.append(event)
        try:
            result = handler.lambda_handler(event, LambdaContext())
        except Exception as exc:  # as Lambda reports an unhandled error
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()
        return json.dumps(result, default=str).encode()

    original = LambdaSimpleBackend.invoke
    LambdaSimpleBackend.invoke = invoke
    try:
        yield
    finally:
        LambdaSimpleBackend.invoke = original


def history(cuts: dict[str, int]) -> dict[str, list[list[bytes]]]:
    """The fixture tables cut into ingestion packets (payments: unpaid, then paid)."""
    packets = {s.name: split(fixture_lines(s.name), cuts.get(s.name, 1)) for s in SOURCE_TABLES}
    unpaid, paid = payment_versions(fixture_lines("payment"))
    packets["payment"] = split(unpaid, cuts.get("payment", 1)) + split(paid, cuts.get("payment", 1))
    return packets


def upload(s3, packets: dict[str, list[list[bytes]]]) -> None:
    for table, parts in packets.items():
        for k, lines in enumerate(parts, start=1):
            s3.put_object(Bucket=INGESTION, Key=packet_key(table, k, lines), Body=b"".join(lines))


def start_rebuild(sfn, lam, iam, max_concurrency: int) -> str:
    """The state machine as the stack defines it, and one execution of it into TARGET."""
    role = iam.create_role(RoleName="rebuild", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    function = lam.create_function(FunctionName="rebuild", Runtime="python3.12", Role=role,
                                   Handler="runtime.handler.lambda_handler", Code={"ZipFile": b"in-process"})  # fmt: skip
    text = json.dumps(runnable_by_moto(definition(FUNCTION_ARN, max_concurrency))).replace(
        FUNCTION_ARN, function["FunctionArn"])
    machine = sfn.create_state_machine(name="rebuild", definition=text, roleArn=role)["stateMachineArn"]
    target = {"target": {"bucket": TARGET, "ssm_prefix": TARGET_PREFIX}}
    return sfn.start_execution(stateMachineArn=machine, input=json.dumps(target))["executionArn"]


class Progress:
    """Items staged / total, rows/s and time left, from what the target holds."""

    def __init__(self, s3, ssm) -> None:
        self.s3, self.ssm = s3, ssm
        self.rows: dict[str, int] = {}
        self.started = time.monotonic()

    def line(self) -> str:
        keys = [k for k in _keys(self.s3, TARGET, STAGED) if k.endswith("item.json")]
        for key in keys:
            if key not in self.rows:
                self.rows[key] = json.loads(self.s3.get_object(Bucket=TARGET, Key=key)["Body"].read())["rows"]
        try:
            total = len(json.loads(self.s3.get_object(Bucket=TARGET, Key=ITEMS_KEY)["Body"].read()))
        except self.s3.exceptions.NoSuchKey:
            return "planning, dimensions ..."
        done, rows = len(self.rows), sum(self.rows.values())
        spent = time.monotonic() - self.started
        rate = rows / spent if spent else 0.0
        left = spent / done * (total - done) if done else float("nan")
        committed = sum(self._consumed(f.source) for f in FACTS)
        return (f"items staged {done}/{total}, {rows:,} rows, {rate:,.0f} rows/s, ~{left:.0f} s left; "
                f"fact packets committed {committed}")

    def _consumed(self, table: str) -> int:
        try:
            name = consumed_parameter(TARGET_PREFIX, table)
            return int(self.ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except self.ssm.exceptions.ParameterNotFound:
            return 0


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(o["Key"] for o in page.get("Contents", ()))
    return found


def _rows(s3, bucket: str, table: str) -> int:
    return sum(pq.read_metadata(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())).num_rows
               for k in _keys(s3, bucket, f"{table}/"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-concurrency", type=int, default=4, help="the Distributed Map's MaxConcurrency")
    parser.add_argument("--sales-packets", type=int, default=8, help="cut sales_order into this many packets")
    args = parser.parse_args(argv)
    os.environ.update({**LOCAL_AWS_ENV, "INGESTION_BUCKET": INGESTION, "PROCESSED_BUCKET": LIVE,
                       "SSM_PREFIX": LIVE_PREFIX, "LOG_LEVEL": "WARNING"})  # fmt: skip
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    log = open(os.devnull, "w")
    logger.registered_handler.setStream(log)
    with mock_aws(config=MOTO_CONFIG), in_process_lambda(), contextlib.redirect_stdout(log):
        handler.reset()
        entry.reset()
        s3, ssm = boto3.client("s3"), boto3.client("ssm")
        for bucket in (INGESTION, LIVE, TARGET):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        from runtime.tables import packet_id_parameters

        for name in packet_id_parameters(LIVE_PREFIX):
            ssm.put_parameter(Name=name, Value="0", Type="String")
        packets = history({"sales_order": args.sales_packets, "purchase_order": 4, "transaction": 4, "payment": 2,
                           "design": 2})  # fmt: skip
        upload(s3, packets)
        runs = max(len(p) for p in packets.values())
        print(f"1/3 the history: {sum(len(p) for p in packets.values())} ingestion packets; processed the live "
              f"way, {runs} runs ...", file=sys.stderr, flush=True)
        for k in range(1, runs + 1):
            event = {"packets": [{"table": t, "id": k} for t, parts in packets.items() if k <= len(parts)]}
            handler.lambda_handler(event, None)
        print(f"2/3 the rebuild state machine in moto's interpreter (MaxConcurrency {args.max_concurrency}) "
              f"into s3://{TARGET} ({TARGET_PREFIX})", file=sys.stderr, flush=True)
        sfn = boto3.client("stepfunctions")
        execution = start_rebuild(sfn, boto3.client("lambda"), boto3.client("iam"), args.max_concurrency)
        progress, started = Progress(s3, ssm), time.monotonic()
        while (status := sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
            print(f"    {time.monotonic() - started:5.1f}s  {progress.line()}", file=sys.stderr, flush=True)
            time.sleep(1.0)
        print(f"    {time.monotonic() - started:5.1f}s  {progress.line()}  [{status}]", file=sys.stderr, flush=True)
        if status != "SUCCEEDED":
            print(json.dumps(sfn.describe_execution(executionArn=execution), default=str)[:2000], file=sys.stderr)
            return 1
        report = json.loads(s3.get_object(Bucket=TARGET, Key=REPORT_KEY)["Body"].read())
        print("3/3 the live warehouse and the rebuilt one", file=sys.stderr, flush=True)
        print(f"    {'table':<21}{'live rows':>11}{'rebuilt rows':>14}", file=sys.stderr)
        for table in OUTPUT_TABLES:
            print(f"    {table:<21}{_rows(s3, LIVE, table):>11,}{_rows(s3, TARGET, table):>14,}", file=sys.stderr)
        print("    report (s3://" + TARGET + "/" + REPORT_KEY + "):", file=sys.stderr)
        print("    " + json.dumps(report, indent=1).replace("\n", "\n    "), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
