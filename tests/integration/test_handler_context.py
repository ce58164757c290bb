"""The handler's log lines carry the Lambda context; a bad configuration still logs and counts."""

from __future__ import annotations

import io
import itertools
import json
from types import SimpleNamespace

import pytest

from runtime import handler
from runtime.errors import ConfigError
from runtime.observability import logger
from sandbox.seed import fixture_lines, upload_packet


def _context(request_id: str) -> SimpleNamespace:
    return SimpleNamespace(
        aws_request_id=request_id,
        function_name="TotesysProcessing-Function",
        invoked_function_arn="arn:aws:lambda:eu-west-2:123456789012:function:TotesysProcessing-Function",
        memory_limit_in_mb=3008,
    )


def _logged(call) -> list[dict]:
    log = io.StringIO()
    previous = logger.registered_handler.setStream(log)
    try:
        call()
    finally:
        logger.registered_handler.setStream(previous)
    return [json.loads(line) for line in log.getvalue().splitlines()]


def test_every_line_names_the_request_and_only_the_first_is_a_cold_start(aws, monkeypatch, capsys):
    monkeypatch.setattr(handler, "_invocations", itertools.count())
    upload_packet(aws.s3, aws.names.ingestion_bucket, "currency", 1, fixture_lines("currency"))
    first = _logged(lambda: handler.lambda_handler({"packets": [{"table": "currency", "id": 1}]}, _context("req-1")))
    second = _logged(lambda: handler.lambda_handler({"packets": []}, _context("req-2")))
    assert first and second
    assert all(line["function_request_id"] == "req-1" and line["cold_start"] is True for line in first)
    assert all(line["function_request_id"] == "req-2" and line["cold_start"] is False for line in second)
    assert all(line["function_name"] == "TotesysProcessing-Function" for line in first + second)
    assert all(line["function_memory_size"] == 3008 for line in first + second)
    # Without a context (a local run) the keys are simply absent.
    third = _logged(lambda: handler.lambda_handler({"packets": []}, None))
    assert all("function_request_id" not in line for line in third)


def test_a_configuration_error_still_writes_the_summary_and_the_failure_metric(aws, monkeypatch, capsys):
    monkeypatch.delenv("INGESTION_BUCKET")
    handler.reset()

    def call():
        with pytest.raises(ConfigError, match="INGESTION_BUCKET is not set"):
            handler.lambda_handler({"packets": [{"table": "currency", "id": 1}]}, _context("req-bad"))

    lines = _logged(call)
    [summary] = [line for line in lines if line["message"] == "invocation summary"]
    assert summary["level"] == "ERROR" and summary["function_request_id"] == "req-bad"
    assert summary["summary"]["status"] == "failed"
    assert summary["summary"]["error"].startswith("ConfigError: bad configuration: INGESTION_BUCKET is not set")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [(m["table"], m["ProcessingFailed"]) for m in emf] == [("config", 1)]

    # Fixed, the next invocation of the same container builds its settings and runs.
    monkeypatch.setenv("INGESTION_BUCKET", aws.names.ingestion_bucket)
    assert handler.lambda_handler({"packets": []}, None)["status"] == "succeeded"
