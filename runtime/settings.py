"""Environment → typed settings, read and checked once at cold start
(docs/design.md#configuration). A bad value is quoted bounded and with ascii().
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.errors import ConfigError, shown
from runtime.tables import DEFAULT_SSM_PREFIX

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# An invocation stops between two packets once less than this is left before its
# timeout (docs/design.md#backlog): the worst case of one packet, with room to spare.
DEFAULT_STOP_MARGIN_SECONDS = 120
MAX_STOP_MARGIN_SECONDS = 900  # Lambda's longest timeout


@dataclass(frozen=True)
class Settings:
    ingestion_bucket: str
    processed_bucket: str
    ssm_prefix: str = DEFAULT_SSM_PREFIX
    log_level: str = "INFO"
    stop_margin_seconds: int = DEFAULT_STOP_MARGIN_SECONDS
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
                problems.append(f"{name}={shown(value)} is not a valid S3 bucket name")
            return value

        ingestion = bucket("INGESTION_BUCKET")
        processed = bucket("PROCESSED_BUCKET")
        prefix = env.get("SSM_PREFIX", "").strip().rstrip("/") or DEFAULT_SSM_PREFIX
        if not _PREFIX.match(prefix):
            problems.append(
                f"SSM_PREFIX={shown(prefix)} must look like /totesys/processing "
                "(slash-separated letters, digits, '_', '.', '-')"
            )
        level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
        if level not in _LEVELS:
            problems.append(f"LOG_LEVEL={shown(level)} is not one of {', '.join(_LEVELS)}")
        margin_text = env.get("STOP_MARGIN_SECONDS", "").strip()
        margin = DEFAULT_STOP_MARGIN_SECONDS
        if margin_text:
            # Checked as text first: int() of 5,000 digits raises, and accepts '１２'.
            digits = margin_text.isascii() and margin_text.isdigit() and len(margin_text) <= 4
            margin = int(margin_text) if digits else 0
            if not 1 <= margin <= MAX_STOP_MARGIN_SECONDS:
                problems.append(
                    f"STOP_MARGIN_SECONDS={shown(margin_text)} is not a whole number of seconds "
                    f"between 1 and {MAX_STOP_MARGIN_SECONDS}"
                )
        hours_text = env.get("WAIT_ALARM_HOURS", "").strip() or "24"
        # Checked as text first: float() accepts '１２' and turns 5,000 digits into inf.
        try:
            hours = float(hours_text) if hours_text.isascii() and len(hours_text) <= 12 else -1.0
        except ValueError:
            hours = -1.0
        if not 0 < hours <= 24 * 366:
            problems.append(f"WAIT_ALARM_HOURS={shown(hours_text)} must be a number of hours, over 0, up to a year")
        if ingestion and ingestion == processed:
            problems.append("INGESTION_BUCKET and PROCESSED_BUCKET must differ")
        if problems:
            raise ConfigError("bad configuration: " + "; ".join(problems))
        return cls(ingestion, processed, prefix, level, margin, hours)
