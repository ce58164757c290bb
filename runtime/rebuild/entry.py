"""The processing function in rebuild mode: the composition root of the rebuild's
steps, as the rebuild workflow calls them (cdk_app/rebuild_workflow.py, docs/rebuild.md).

`{"rebuild": {"step": "plan" | "dimensions" | "stage" | "commit" | "report",
"target": {"bucket": "...", "ssm_prefix": "..."}, "items": [...] (stage only)}}`. The
ingestion bucket comes from the function's settings; the target from the event, since
each rebuild writes a new generation. One summary log line per call.
"""

from __future__ import annotations

import os
import re
import time
from functools import cache
from typing import Any

import botocore.session

from runtime.adapters.aws import CLIENT_CONFIG
from runtime.adapters.generation import create_packet_ids
from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.errors import InvalidEventError
from runtime.observability import Metrics, logger
from runtime.rebuild import steps
from runtime.settings import Settings
from runtime.tables import packet_id_parameters

STEPS = ("plan", "dimensions", "stage", "commit", "report")
# A sequential step stops between packets once less than this is left of its call.
RESERVE_SECONDS = 180.0
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")


@cache
def _clients() -> tuple[Settings, Any, Any]:
    settings = Settings.from_env(os.environ)
    logger.setLevel(settings.log_level)
    session = botocore.session.get_session()
    return settings, session.create_client("s3", config=CLIENT_CONFIG), session.create_client("ssm", config=CLIENT_CONFIG)


def reset() -> None:
    """Forget the settings and clients (tests that change the environment)."""
    _clients.cache_clear()


def handle(event: dict, context: Any) -> dict:
    started = time.perf_counter()
    request = event.get("rebuild")
    step, bucket, prefix = _checked(event, request)
    settings, s3, ssm = _clients()
    if bucket in (settings.ingestion_bucket, settings.processed_bucket) or prefix == settings.ssm_prefix:
        raise InvalidEventError("a rebuild target must be a new generation, not the live buckets or packet ids")
    metrics = Metrics()
    target = steps.Target(S3Bucket(s3, settings.ingestion_bucket), S3Bucket(s3, bucket), SsmPacketIds(ssm),
                          prefix, metrics)  # fmt: skip
    try:
        if step == "plan":
            create_packet_ids(ssm, packet_id_parameters(prefix))
            result = steps.plan(target)
            # The items go to the Map through the target (ItemReader), not the state.
            result.pop("items")
        elif step == "stage":
            result = steps.stage_items(target, list(request.get("items") or []))
        elif step == "report":
            result = steps.report(target)
        else:
            budget = steps.Budget(_seconds_left(context), RESERVE_SECONDS, request.get("max_packets"))
            result = (steps.dimensions if step == "dimensions" else steps.commit)(target, budget)
    finally:
        metrics.flush()
    logger.info("rebuild step", extra={"step": step, "target": bucket, "result": result,
                                       "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
    return result


def _checked(event: dict, request: Any) -> tuple[str, str, str]:
    if not isinstance(request, dict) or set(event) != {"rebuild"}:
        raise InvalidEventError("a rebuild event is {\"rebuild\": {\"step\": ..., \"target\": {...}}} and nothing else")
    step = request.get("step")
    target = request.get("target") or {}
    bucket, prefix = target.get("bucket", ""), str(target.get("ssm_prefix", "")).rstrip("/")
    problems = []
    if step not in STEPS:
        problems.append(f"step {step!r} is not one of {', '.join(STEPS)}")
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        problems.append(f"target.bucket {bucket!r} is not a bucket name")
    if not _PREFIX.match(prefix):
        problems.append(f"target.ssm_prefix {prefix!r} is not a parameter path like /totesys/dev/generations/g2")
    if problems:
        raise InvalidEventError("invalid rebuild event: " + "; ".join(problems))
    return step, bucket, prefix


def _seconds_left(context: Any):
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return lambda: context.get_remaining_time_in_millis() / 1000
    return steps.wall_clock(900.0)
