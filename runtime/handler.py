"""The Lambda entry point and the one composition root.

Thin on purpose: check the event, build the pipeline from the settings and the AWS
clients, run it, log one summary line and flush the metrics. Settings and clients are
built once per container (at the first invocation, never at import), so a bad
configuration fails that first invocation with a message naming the setting, and that
invocation still writes its summary line and the ProcessingFailed metric.

Every log line carries the Lambda context as Powertools names it (function_request_id,
cold_start, function_name, function_arn, function_memory_size). The clients come from
botocore directly: boto3 would add its resource layer and s3transfer (about a tenth of a
second of every cold start) for clients that are the same botocore clients.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import datetime, timezone
from collections.abc import Callable
from functools import cache
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError

from runtime.adapters.aws import CLIENT_CONFIG
from runtime.adapters.function import FunctionInvoker
from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.errors import ProcessingError
from runtime.events import parse_event
from runtime.observability import PROCESSING_FAILED, Metrics, logger
from runtime.pipeline import Pipeline, RunSummary
from runtime.remembered import Lru, RememberingStore
from runtime.settings import Settings


@cache
def _application() -> tuple[Settings, S3Bucket, RememberingStore, SsmPacketIds]:
    settings = Settings.from_env(os.environ)
    logger.setLevel(settings.log_level)
    # botocore honours AWS_ENDPOINT_URL, which points local runs and tests at moto.
    session = botocore.session.get_session()
    s3 = session.create_client("s3", config=CLIENT_CONFIG)
    ssm = session.create_client("ssm", config=CLIENT_CONFIG)
    return (
        settings,
        S3Bucket(s3, settings.ingestion_bucket),
        # Immutable objects stay remembered across warm invocations, bounded by bytes.
        RememberingStore(S3Bucket(s3, settings.processed_bucket), Lru(), settings.processed_bucket),
        SsmPacketIds(ssm),
    )


_lazy_clients: dict[str, Any] = {}


def _lambda_client():
    """Built when an invocation first stops early: most containers never pay for it."""
    if "lambda" not in _lazy_clients:
        _lazy_clients["lambda"] = botocore.session.get_session().create_client("lambda", config=CLIENT_CONFIG)
    return _lazy_clients["lambda"]


def reset() -> None:
    """Forget the settings and clients (tests that change the environment)."""
    _application.cache_clear()
    _lazy_clients.clear()


# Counts invocations of this container: the first one is the cold start.
_invocations = itertools.count()
_CONTEXT_KEYS = ("function_request_id", "cold_start", "function_name", "function_arn", "function_memory_size")


def lambda_handler(event: Any, context: Any) -> dict:
    if isinstance(event, dict) and "rebuild" in event:  # the rebuild workflow (docs/design.md#rebuild)
        from runtime.rebuild.entry import handle  # imported only there: no cost to live cold starts

        return handle(event, context)
    started = time.perf_counter()
    logger.append_keys(**_context_keys(context, cold_start=next(_invocations) == 0))
    metrics = Metrics()
    summary = RunSummary()
    error: BaseException | None = None
    named: list[str] = []
    continues: str | None = None
    # What failed when nothing names a packet: the configuration, then the event.
    failing = "config"
    try:
        settings, ingestion, processed, packet_ids = _application()
        failing = "event"
        parsed = parse_event(event)
        named = [str(p) for p in parsed.packets]
        logger.append_keys(packets=named)
        pipeline = Pipeline(ingestion, processed, packet_ids, settings.ssm_prefix, metrics,
                            _seconds_left(context), settings.stop_margin_seconds, settings.wait_alarm_hours)
        pipeline.run(parsed, summary)  # filled in as it goes: still there if it raises
        if summary.left_pending is not None:
            continues = _carry_on(context, summary.left_pending)
    except Exception as exc:
        error = exc
        failed_table = (summary.failed_packet or f"{failing}:0").split(":")[0]
        metrics.add(PROCESSING_FAILED, failed_table)
        raise
    finally:
        line = _summary(summary, named, started, error, continues)
        if error is None:
            logger.info("invocation summary", extra={"summary": line})
        else:
            logger.error("invocation summary", extra={"summary": line}, exc_info=error)
        metrics.flush()
        logger.remove_keys(["packets", *_CONTEXT_KEYS])
    return line


def _carry_on(context: Any, left: list[str]) -> str:
    """Stopped before the timeout with work left: invoke this function again with an
    empty event, which finishes the pending records first (docs/design.md#backlog).
    Reserved concurrency 1 queues it until this invocation ends. Each link of the
    chain has done at least one packet, so the chain ends with the backlog. If the
    call fails, the next event carries on all the same."""
    arn = getattr(context, "invoked_function_arn", None)
    if not isinstance(arn, str) or not arn:
        return "with the next event"
    try:
        FunctionInvoker(_lambda_client(), arn).invoke_async({"packets": []})
    except (ProcessingError, BotoCoreError) as exc:
        logger.warning("could not invoke itself to carry on: the next event will",
                       extra={"error": str(exc), "left_pending": left})
        return "with the next event"
    logger.info("invoked itself with an empty event to carry on", extra={"left_pending": left})
    return "invoked itself"


def _seconds_left(context: Any) -> Callable[[], float] | None:
    """The time left before the timeout, from Lambda's context; None without one
    (a local run has no limit)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return lambda: remaining() / 1000


def _context_keys(context: Any, *, cold_start: bool) -> dict[str, Any]:
    """The Lambda context's correlation keys (absent when run without one, e.g. locally)."""
    return {
        "cold_start": cold_start,
        "function_request_id": getattr(context, "aws_request_id", None),
        "function_name": getattr(context, "function_name", None),
        "function_arn": getattr(context, "invoked_function_arn", None),
        "function_memory_size": getattr(context, "memory_limit_in_mb", None),
    }


def _summary(
    summary: RunSummary, named: list[str], started: float, error: BaseException | None, continues: str | None = None
) -> dict:
    stopped = error is None and summary.left_pending is not None
    return {
        "status": "failed" if error else "stopped_early" if stopped else "succeeded",
        "packets_named": named,
        "packets_processed": [o.packet for o in summary.outcomes],
        "already_processed": summary.already_processed,
        "rows_written": summary.rows_written(),
        "rows_rejected": summary.rows_rejected(),
        "failed_packet": summary.failed_packet if error else None,
        # Stopped between two packets before the timeout: left for the next invocation.
        "left_pending": summary.left_pending if stopped else None,
        "continues": continues if stopped else None,
        "error": f"{type(error).__name__}: {error}" if error else None,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
