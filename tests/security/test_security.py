"""Static security checks and the bounds of what reaches the logs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from runtime.handler import lambda_handler
from runtime.observability import logger
from sandbox.seed import fixture_lines, upload_packet

ROOT = Path(__file__).resolve().parents[2]


def test_bandit_finds_no_medium_or_high_severity_issue():
    done = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "runtime", "sandbox", "cdk_app", "app.py",
         "--severity-level", "medium", "-f", "json"],
        cwd=ROOT, capture_output=True, text=True,
    )
    report = json.loads(done.stdout)
    assert report["results"] == [], json.dumps(report["results"], indent=1)
    assert report["metrics"]["_totals"]["loc"] > 1000  # it did read the code


def test_row_content_reaches_the_logs_only_as_bounded_examples(aws):
    """Valid rows never appear in logs; a rejected row only in its report's examples."""
    secret = "zz-row-content-marker"
    staff = [line.replace(b"terrifictotes.com", f"{secret}.com".encode()) for line in fixture_lines("staff")]
    staff[0] = staff[0].replace(b'@', b"-at-")  # one invalid email: its value may be an example
    for table in ("department",):
        upload_packet(aws.s3, aws.names.ingestion_bucket, table, 1, fixture_lines(table))
    upload_packet(aws.s3, aws.names.ingestion_bucket, "staff", 1, staff)
    log = io.StringIO()
    previous = logger.registered_handler.setStream(log)
    try:
        lambda_handler({"packets": [{"table": "department", "id": 1}, {"table": "staff", "id": 1}]}, None)
    finally:
        logger.registered_handler.setStream(previous)
    mentions = [json.loads(line) for line in log.getvalue().splitlines() if secret in line]
    assert len(mentions) == 1
    [report] = mentions
    [check] = report["validation"]["failed_checks"]
    assert check["column"] == "email_address" and len(check["examples"]) == 1
    assert all(len(example) <= 80 for example in check["examples"])
