"""The on-call commands as a person runs them, against moto's server: where they act,
dry runs that change nothing, one-line refusals, and the views."""

import json
import os
import subprocess
import sys

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.handler import lambda_handler
from runtime.operations import main, redrive
from sandbox.seed import fixture_lines, upload_packet

DIMENSIONS = ("currency", "design", "address", "department", "counterparty", "staff")


def _state(aws, sqs=None, queue_url=None) -> dict:
    """Everything a command could change: both buckets' objects, the ids, the queue."""
    state = {}
    for bucket in (aws.names.ingestion_bucket, aws.names.processed_bucket):
        for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            state.update({f"{bucket}/{o['Key']}": o["ETag"] for o in page.get("Contents", ())})
    for page in aws.ssm.get_paginator("get_parameters_by_path").paginate(Path="/", Recursive=True):
        state.update({p["Name"]: p["Value"] for p in page["Parameters"]})
    if sqs is not None:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        state["dlq"] = attributes["Attributes"]["ApproximateNumberOfMessages"]
    return state


def _parked(sqs, queue_url, event, error="UnreadableObjectError", message="sales_order/... is truncated"):
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({
        "version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event, "responsePayload": {"errorType": error, "errorMessage": message},
    }))


@pytest.fixture
def poisoned(aws, monkeypatch):
    """sales_order:1 cannot be read; sales_order:2 waits behind it; its event is in the queue."""
    for source in DIMENSIONS:
        upload_packet(aws.s3, aws.names.ingestion_bucket, source, 1, fixture_lines(source))
    lambda_handler({"packets": [{"table": t, "id": 1} for t in DIMENSIONS]}, None)
    aws.s3.put_object(Bucket=aws.names.ingestion_bucket, Key="sales_order/sales_order_packet_1_x.jsonl.gz",
                      Body=b"\x1f\x8b truncated")
    upload_packet(aws.s3, aws.names.ingestion_bucket, "sales_order", 2, fixture_lines("sales_order")[:5])
    for k in (1, 2):
        with pytest.raises(Exception):  # noqa: B017 - the poison packet, whatever it is called
            lambda_handler({"packets": [{"table": "sales_order", "id": k}]}, None)
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="totesys-processing-dlq")["QueueUrl"]
    _parked(sqs, queue_url, {"packets": [{"table": "sales_order", "id": 2}]})
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue_url)
    monkeypatch.setenv("PROCESSING_FUNCTION", "totesys-processing")
    aws.sqs, aws.queue_url = sqs, queue_url
    return aws


def test_status_names_the_blocking_packet_and_its_last_error(poisoned, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "BLOCKING: sales_order:1" in out
    assert "UnreadableObjectError: sales_order/... is truncated" in out
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["blocking"] == "sales_order:1" and report["consumed"]["staff"] == 1
    assert [p["packets"] for p in report["pending"]] == [["sales_order:1"], ["sales_order:2"]]


def test_dry_runs_change_nothing(poisoned, capsys):
    before = _state(poisoned, poisoned.sqs, poisoned.queue_url)
    assert main(["skip", "--table", "sales_order", "--packet", "1", "--reason", "truncated", "--by", "me",
                 "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] and plan["would_write"] == "_commits/sales_order/sales_order_packet_1.json"
    assert main(["redrive", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["would_redrive"] == [{"packets": [{"table": "sales_order", "id": 2}]}]
    assert main(["replay", "--dry-run"]) == 0
    assert main(["dlq"]) == 0 and "RetriesExhausted after 3 attempts" in capsys.readouterr().out
    assert _state(poisoned, poisoned.sqs, poisoned.queue_url) == before
    # The dead-letter message is visible again at once for the real redrive.
    assert len(redrive(poisoned.sqs, poisoned.queue_url, lambda e: None)) == 1


def test_invoke_without_a_function_is_refused_before_anything_changes(poisoned, capsys, monkeypatch):
    monkeypatch.delenv("PROCESSING_FUNCTION")
    before = _state(poisoned)
    argv = ["skip", "--table", "sales_order", "--packet", "1", "--reason", "r", "--by", "me", "--yes", "--invoke"]
    assert main(argv) == 2
    assert "PROCESSING_FUNCTION is not set" in capsys.readouterr().err and _state(poisoned) == before


def test_a_skip_without_confirmation_is_refused_and_with_it_is_done(poisoned, capsys):
    before = _state(poisoned)
    argv = ["skip", "--table", "sales_order", "--packet", "1", "--reason", "truncated", "--by", "me"]
    assert main(argv, confirm=lambda question: False) == 2
    assert "not confirmed" in capsys.readouterr().err and _state(poisoned) == before
    assert main(argv + ["--yes"]) == 0
    assert poisoned.keys("_commits/sales_order/") == ["_commits/sales_order/sales_order_packet_1.json"]


def test_the_quarantine_view_shows_reasons_and_open_waits(aws, capsys):
    for source in ("currency", "design", "address", "department", "counterparty"):
        upload_packet(aws.s3, aws.names.ingestion_bucket, source, 1, fixture_lines(source))
    upload_packet(aws.s3, aws.names.ingestion_bucket, "sales_order", 1, fixture_lines("sales_order")[:5])
    lambda_handler({"packets": [{"table": t, "id": 1} for t in
                                ("currency", "design", "address", "department", "counterparty", "sales_order")]}, None)
    capsys.readouterr()  # the handler's own log and metric lines
    assert main(["quarantine", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["tables"]["fact_sales_order"]["rows"] == 5 and view["tables"]["fact_sales_order"]["waiting"] == 5
    assert view["open_waits"]["fact_sales_order"]["needs"]["staff"]
    [key] = aws.keys("_quarantine/")
    assert main(["quarantine", "--file", key, "--limit", "2"]) == 0
    assert "2 rows shown" in capsys.readouterr().out
    # Once staff comes, the replay resolves them: the view no longer lists that file.
    upload_packet(aws.s3, aws.names.ingestion_bucket, "staff", 1, fixture_lines("staff"))
    lambda_handler({"packets": [{"table": "staff", "id": 1}]}, None)
    capsys.readouterr()
    assert main(["quarantine"]) == 0 and "empty" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quarantine_files"] == [] and report["open_waits"] == {}
    # Nothing open: a replay takes no number and queues nothing.
    assert main(["replay"]) == 0 and aws.keys("_replays/") == [] and aws.keys("_pending/") == []


def test_stage_reads_the_buckets_and_prefix_from_the_stack_outputs(aws, capsys, monkeypatch):
    for variable in ("INGESTION_BUCKET", "PROCESSED_BUCKET", "SSM_PREFIX"):
        monkeypatch.delenv(variable)
    outputs = {"IngestionBucketName": aws.names.ingestion_bucket, "ProcessedBucketName": aws.names.processed_bucket,
               "SsmPrefix": aws.names.ssm_prefix, "FunctionName": "f"}
    template = {"Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName="TotesysProcessing-rehearsal",
                                                TemplateBody=json.dumps(template))
    assert main(["--stage", "rehearsal", "status"]) == 0
    assert "stack TotesysProcessing-rehearsal" in capsys.readouterr().out
    assert main(["status"]) == 2
    assert "PROCESSED_BUCKET is not set: pass --stage" in capsys.readouterr().err
    assert main(["--stage", "nosuch", "status"]) == 2
    assert "stack TotesysProcessing-nosuch does not exist" in capsys.readouterr().err


def _cli(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.operations", "status"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_missing_region_credentials_or_setting_is_one_line_exit_2_without_traceback(aws):
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"AWS_CONFIG_FILE": "/dev/null",
                                                                                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                                                                                "AWS_EC2_METADATA_DISABLED": "true"}
    cases = [
        (bare, "no AWS region: export AWS_REGION"),
        (bare | {"AWS_REGION": "eu-west-2"}, "no AWS credentials: export AWS_PROFILE"),
        ({**os.environ, "PROCESSED_BUCKET": ""}, "PROCESSED_BUCKET is not set"),
        ({**os.environ, "PROCESSED_BUCKET": "Bad_Bucket\u0430"}, "'Bad_Bucket\\u0430' is not an S3 bucket name"),
        ({**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "unreachable"),
        ({**os.environ, "SSM_PREFIX": "/totesys/nosuch/processing"}, "is --stage (or SSM_PREFIX) the deployed one?"),
    ]
    for env, says in cases:
        done = _cli(env)
        assert done.returncode in (1, 2), done.stderr
        assert done.returncode == (1 if says == "unreachable" else 2)
        assert "Traceback" not in done.stderr and "UserWarning" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done.stderr


# Every argument of every command, any text: the typed refusal, bounded, nothing changed.
_LOOKALIKES = st.sampled_from(["s\u0430les_order", "sales_order\u200b", "ｓales_order", "SALES_ORDER", "staff "])
_TEXT = st.one_of(
    st.text(max_size=40), _LOOKALIKES, st.sampled_from(["0", "-1", "abc", "1e3", "1.5", "NaN", "\u0661", "9" * 5000]),
    st.integers(min_value=-10, max_value=10**30).map(str), st.just("x" * 100_000),
)
_COMMANDS = [
    ("skip", ["--table", "--packet", "--reason", "--by"]),
    ("late", ["--table", "--packet"]),
    ("quarantine", ["--file", "--limit"]),
    ("redrive", ["--queue-url", "--function"]),
]
_GOOD = {"--table": "sales_order", "--packet": "7", "--reason": "r", "--by": "me",
         "--file": "_quarantine/x", "--limit": "2", "--function": "f"}


def _session(made=[]):  # noqa: B006 - one boto3 session for every example: making one is slow
    if not made:
        made.append(boto3.session.Session())
    return made[0]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(_COMMANDS), bad=st.data(), value=_TEXT)
def test_any_argument_is_refused_in_one_bounded_line_and_changes_nothing(aws, capsys, command, bad, value):
    name, options = command
    option = bad.draw(st.sampled_from(options))
    # Valid arguments are refused too, by the state: no such queue, file, or passed-over packet.
    good = _GOOD | {"--queue-url": os.environ["AWS_ENDPOINT_URL"] + "/123456789012/nosuch"}
    argv = [name] + [x for o in options for x in (o, value if o == option else good[o])]
    argv += ["--dry-run"] if name == "redrive" else []
    before = _state(aws)
    try:
        code = main(argv, session=_session(), confirm=lambda question: False)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err[:2000]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 1100 and lines[0].isascii(), err[:2000]
    assert _state(aws) == before


def test_a_kept_sandbox_outlives_its_block_and_is_stopped_by_its_recorded_pid(tmp_path):
    import urllib.request

    from sandbox.emulator import moto_server
    from sandbox.run import stop_sandbox

    with moto_server(keep=True, log=str(tmp_path / "moto.log")) as server:
        pid, endpoint = server.process.pid, server.endpoint
    assert server.process.poll() is None  # still up after the block
    urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5).close()
    (tmp_path / "sandbox.pid").write_text(f"{pid}\n")
    stop_sandbox(tmp_path)
    assert server.process.wait(timeout=10) is not None and not (tmp_path / "sandbox.pid").exists()
