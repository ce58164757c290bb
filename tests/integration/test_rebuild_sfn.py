"""The rebuild workflow's state machine, executed by moto's Step Functions interpreter
over a history of many packets, with the real handler invoked in-process as its Lambda
(docs/rebuild.md).

What moto 5.2.5 runs and what it does not: its ASL parser has the Distributed Map
(ItemReader from S3, ItemProcessor in DISTRIBUTED mode, MaxConcurrency,
ToleratedFailurePercentage, written as a decimal) but no ItemBatcher: the definition is run with the
ItemBatcher replaced by an ItemSelector that gives each item the shape of a batch of
one (`{"Items": [item], "BatchInput": ...}`), so the Task inside is unchanged. And its
Lambda without Docker answers every invoke with the payload itself, never running
code: the invoke is routed here to `runtime.handler.lambda_handler`, in-process, so
every step runs the real code against moto's S3 and SSM.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from cdk_app.rebuild_workflow import FUNCTION_ARN, definition
from runtime import handler
from runtime.rebuild import entry
from runtime.rebuild.report import REPORT_KEY
from sandbox.rebuild import in_process_lambda, runnable_by_moto
from sandbox.seed import fixture_lines, packet_key, payment_versions, split

REGION = "eu-west-2"
INGESTION, LIVE, TARGET = "totesys-ingestion-test", "totesys-processed-test", "totesys-test-generation-g2"
TARGET_PREFIX = "/totesys/test/generations/g2"


@pytest.fixture
def in_process(monkeypatch):
    calls = []
    with in_process_lambda(calls):
        yield calls


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name, value in {"INGESTION_BUCKET": INGESTION, "PROCESSED_BUCKET": LIVE, "SSM_PREFIX": "/totesys/test/processing",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        handler.reset()
        entry.reset()
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (INGESTION, LIVE, TARGET):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield SimpleNamespace(s3=s3, sfn=boto3.client("stepfunctions", region_name=REGION),
                              lam=boto3.client("lambda", region_name=REGION),
                              iam=boto3.client("iam", region_name=REGION))
        handler.reset()
        entry.reset()


def upload_history(s3, cuts: dict[str, int]) -> int:
    """The fixture tables cut into packets; returns how many fact packets there are."""
    from runtime.tables import SOURCE_TABLES

    packets = {s.name: split(fixture_lines(s.name), cuts.get(s.name, 1)) for s in SOURCE_TABLES}
    unpaid, paid = payment_versions(fixture_lines("payment"))
    packets["payment"] = split(unpaid, cuts["payment"]) + split(paid, cuts["payment"])
    for table, parts in packets.items():
        for k, lines in enumerate(parts, start=1):
            s3.put_object(Bucket=INGESTION, Key=packet_key(table, k, lines), Body=b"".join(lines))
    return sum(len(packets[t]) for t in ("sales_order", "purchase_order", "payment"))


def start(aws, asl: dict) -> str:
    role = aws.iam.create_role(RoleName="rebuild", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    function = aws.lam.create_function(
        FunctionName="rebuild", Runtime="python3.12", Role=role, Handler="runtime.handler.lambda_handler",
        Code={"ZipFile": b"in-process"},
    )["FunctionArn"]
    # As CloudFormation substitutes it (the template holds exactly this definition:
    # tests/infra/test_rebuild_workflow.py).
    text = json.dumps(asl).replace(FUNCTION_ARN, function)
    machine = aws.sfn.create_state_machine(name="rebuild", definition=text, roleArn=role)["stateMachineArn"]
    execution = aws.sfn.start_execution(
        stateMachineArn=machine, name="first", input=json.dumps({"target": {"bucket": TARGET, "ssm_prefix": TARGET_PREFIX}})
    )["executionArn"]
    return execution


def wait(aws, execution: str, seconds: float = 240) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        described = aws.sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.5)
    raise AssertionError(f"the execution still runs after {seconds}s")


def test_the_workflow_rebuilds_the_fixture_history_in_moto(aws, in_process):
    fact_packets = upload_history(aws.s3, {"sales_order": 4, "purchase_order": 2, "transaction": 2, "payment": 2})
    execution = start(aws, runnable_by_moto(definition(FUNCTION_ARN, max_concurrency=2)))
    described = wait(aws, execution)
    assert described["status"] == "SUCCEEDED", described
    report = json.loads(aws.s3.get_object(Bucket=TARGET, Key=REPORT_KEY)["Body"].read())
    assert report["written"]["fact_sales_order"]["rows"] == 11_175
    steps = [e["rebuild"]["step"] for e in in_process]
    assert steps.count("stage") == fact_packets


def test_a_failed_rebuild_ends_in_failed_and_a_second_execution_resumes_it(aws, in_process):
    """An object that cannot be read fails its Map item, after the retries, and the
    execution ends in the Failed state, the live bucket untouched; once the object is
    fixed, the same input runs to the end. (moto's Map does not fail on a failed item:
    it ignores ToleratedFailurePercentage. So here the Commit state runs and stops at
    the first fact packet not staged, which fails it: the target keeps the packets
    before it, committed whole, and the second execution goes on from there.)"""
    upload_history(aws.s3, {"sales_order": 2, "purchase_order": 1, "transaction": 1, "payment": 1})
    [key] = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=INGESTION, Prefix="sales_order/sales_order_packet_2_")
             ["Contents"]]  # fmt: skip
    good = aws.s3.get_object(Bucket=INGESTION, Key=key)["Body"].read()
    aws.s3.put_object(Bucket=INGESTION, Key=key, Body=b"\xff\xfe not utf-8\n")
    asl = runnable_by_moto(definition(FUNCTION_ARN, max_concurrency=2))
    described = wait(aws, start(aws, asl))
    assert described["status"] == "FAILED"
    history = aws.sfn.get_execution_history(executionArn=described["executionArn"])["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered[-1] == "Failed"
    ssm = boto3.client("ssm", region_name=REGION)
    consumed = int(ssm.get_parameter(Name=f"{TARGET_PREFIX}/consumed/sales_order")["Parameter"]["Value"])
    assert consumed == 1  # packet 2 was not staged: nothing of it, nor after it, committed
    assert aws.s3.list_objects_v2(Bucket=LIVE).get("KeyCount", 0) == 0

    aws.s3.put_object(Bucket=INGESTION, Key=key, Body=good)
    machine = aws.sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    again = aws.sfn.start_execution(stateMachineArn=machine, name="resumed", input=json.dumps(
        {"target": {"bucket": TARGET, "ssm_prefix": TARGET_PREFIX}}))["executionArn"]  # fmt: skip
    assert wait(aws, again)["status"] == "SUCCEEDED"
    report = json.loads(aws.s3.get_object(Bucket=TARGET, Key=REPORT_KEY)["Body"].read())
    assert report["written"]["fact_sales_order"]["rows"] == 11_175
    numbers = sorted(int(o["Key"].split("_packet_")[1].split("_")[0]) for o in
                     aws.s3.list_objects_v2(Bucket=TARGET, Prefix="fact_sales_order/")["Contents"])  # fmt: skip
    assert numbers == [1, 2]
