"""Environment → typed settings, read and checked once at cold start (DESIGN §9)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.errors import ConfigError
from runtime.tables import DEFAULT_SSM_PREFIX

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    ingestion_bucket: str
    processed_bucket: str
    ssm_prefix: str = DEFAULT_SSM_PREFIX
    log_level: str = "INFO"
    wait_alarm_hours: float = 24.0  # a fact waiting longer is reported (docs/design.md#waits-and-replays)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse the Lambda environment; every problem is named in one ConfigError."""
        problems: list[str] = []

        def bucket(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                problems.append(f"{name} is not set (the name of an S3 bucket)")
            elif not _BUCKET.match(value):
                problems.append(f"{name}={value!r} is not a valid S3 bucket name")
            return value

        ingestion = bucket("INGESTION_BUCKET")
        processed = bucket("PROCESSED_BUCKET")
        prefix = env.get("SSM_PREFIX", "").strip().rstrip("/") or DEFAULT_SSM_PREFIX
        if not _PREFIX.match(prefix):
            problems.append(
                f"SSM_PREFIX={prefix!r} must look like /totesys/processing "
                "(slash-separated letters, digits, '_', '.', '-')"
            )
        level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
        if level not in _LEVELS:
            problems.append(f"LOG_LEVEL={level!r} is not one of {', '.join(_LEVELS)}")
        hours_text = env.get("WAIT_ALARM_HOURS", "").strip() or "24"
        try:
            hours = float(hours_text)
        except ValueError:
            hours = -1.0
        if not 0 < hours <= 24 * 366:
            problems.append(f"WAIT_ALARM_HOURS={hours_text[:40]!r} must be a number of hours, over 0, up to a year")
        if ingestion and ingestion == processed:
            problems.append("INGESTION_BUCKET and PROCESSED_BUCKET must differ")
        if problems:
            raise ConfigError("bad configuration: " + "; ".join(problems))
        return cls(ingestion, processed, prefix, level, hours)
