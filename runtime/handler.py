"""The Lambda entry point and the one composition root.

Thin on purpose: check the event, build the pipeline from the settings and the AWS
clients, run it, log one summary line and flush the metrics. Settings and clients are
built once per container (at the first invocation, never at import), so a bad
configuration fails that first invocation with a message naming the setting.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from functools import cache
from typing import Any

import boto3

from runtime.adapters.aws import CLIENT_CONFIG
from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.events import parse_event
from runtime.observability import PROCESSING_FAILED, Metrics, logger
from runtime.pipeline import Pipeline, RunSummary
from runtime.settings import Settings


@cache
def _application() -> tuple[Settings, S3Bucket, S3Bucket, SsmPacketIds]:
    settings = Settings.from_env(os.environ)
    logger.setLevel(settings.log_level)
    # boto3 honours AWS_ENDPOINT_URL, which points local runs and tests at moto.
    session = boto3.session.Session()
    s3 = session.client("s3", config=CLIENT_CONFIG)
    ssm = session.client("ssm", config=CLIENT_CONFIG)
    return (
        settings,
        S3Bucket(s3, settings.ingestion_bucket),
        S3Bucket(s3, settings.processed_bucket),
        SsmPacketIds(ssm),
    )


def reset() -> None:
    """Forget the settings and clients (tests that change the environment)."""
    _application.cache_clear()


def lambda_handler(event: Any, context: Any) -> dict:
    started = time.perf_counter()
    settings, ingestion, processed, packet_ids = _application()
    metrics = Metrics()
    summary = RunSummary()
    error: BaseException | None = None
    named: list[str] = []
    try:
        parsed = parse_event(event)
        named = [str(p) for p in parsed.packets]
        logger.append_keys(packets=named)
        pipeline = Pipeline(ingestion, processed, packet_ids, settings.ssm_prefix, metrics)
        pipeline.run(parsed, summary)  # filled in as it goes: still there if it raises
    except Exception as exc:
        error = exc
        failed_table = (summary.failed_packet or "event:0").split(":")[0]
        metrics.add(PROCESSING_FAILED, failed_table)
        raise
    finally:
        line = _summary(summary, named, started, error)
        if error is None:
            logger.info("invocation summary", extra={"summary": line})
        else:
            logger.error("invocation summary", extra={"summary": line}, exc_info=error)
        metrics.flush()
        logger.remove_keys(["packets"])
    return line


def _summary(summary: RunSummary, named: list[str], started: float, error: BaseException | None) -> dict:
    return {
        "status": "failed" if error else "succeeded",
        "packets_named": named,
        "packets_processed": [o.packet for o in summary.outcomes],
        "already_processed": summary.already_processed,
        "rows_written": summary.rows_written(),
        "rows_rejected": summary.rows_rejected(),
        "failed_packet": summary.failed_packet if error else None,
        "error": f"{type(error).__name__}: {error}" if error else None,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
