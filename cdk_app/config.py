"""The deployment's settings: context keys, their defaults and their checks, in one place.

`app.py` reads the raw values (from `cdk.json` context or `-c key=value`) and hands
them to `ProcessingConfig.from_context`; everything after that is typed. A value that
makes no sense fails synthesis with a message naming the key, never a half-built
stack. `-c` always passes strings, so numbers, booleans and lists are also accepted
in their text form (`-c memory_mb=4096`, `-c alarm_emails=a@x.com,b@y.com`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.names import DEFAULT_NAMESPACE

ARCHITECTURES = ("arm64", "x86_64")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The values CloudWatch Logs accepts for a log group's retention, in days.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
LAMBDA_MAX_TIMEOUT_SECONDS = 900
DEFAULT_STACK_PREFIX = "TotesysProcessing"
LAMBDA_MEMORY_MB = (128, 10_240)

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_FUNCTION_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:")
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,100}$")
_RUNBOOK = re.compile(r"^(https://[^\s#]{1,400}|[\w./-]{1,200}\.md)$")
# CloudWatch evaluates at most 7 days of hourly periods.
MAX_FRESHNESS_HOURS = 168


class ConfigError(ValueError):
    """A context value is missing its right type or shape; the message names the key."""


@dataclass(frozen=True, kw_only=True)
class ProcessingConfig:
    """Everything a deployment may choose. Defaults are the documented defaults."""

    # The one key that separates deployments in an account: the stack name, the metric
    # namespace (so one stage's alarms never watch another's metrics) and the packet-id
    # parameters' path (so a second stage does not collide with the first) follow it.
    stage: str = "dev"
    # None: TotesysProcessing-<stage>.
    stack_name: str | None = None
    # Existing buckets, imported by name; None creates the bucket in this stack.
    ingestion_bucket: str | None = None
    processed_bucket: str | None = None
    log_level: str = "INFO"
    architecture: str = "arm64"
    # 3008 MB: Lambda gives CPU in proportion to memory (about 1.7 vCPU here) and the
    # pyarrow parse and Parquet write are multi-threaded; the runtime streams a packet in
    # 32 MiB blocks, but what it carries across a packet (order versions, dates) and the
    # dimension state grow with the data, and a 1M-row packet (about 340 MB of JSON
    # lines) should not be the one that runs out. Well below Lambda's 10,240 MB cap, as
    # new accounts start with a reduced memory quota.
    memory_mb: int = 3008
    # 10 minutes: one packet takes seconds, but an invocation also finishes pending
    # packets and catches up on gaps (docs/design.md#backlog), all inside one run; the margin to
    # Lambda's 15-minute cap is left so the duration alarm can warn first.
    timeout_seconds: int = 600
    log_retention_days: int = 90
    alarm_emails: tuple[str, ...] = ()
    # The IAM role the ingestion Lambda runs as: Lambda authorizes an Invoke call by
    # the caller's identity, which for a Lambda function is its execution role.
    ingestion_role_arn: str | None = None
    # False packages runtime/ as it is, without dependencies: for template tests and
    # quick looks at the template, never for a deployment.
    bundle: bool = True
    # False lets the asset be built without bytecode when no Python of the runtime's version is
    # on this machine (synthesis warns loudly): every cold start then compiles about a
    # thousand modules. Only ever an explicit choice; the default fails the build instead.
    require_bytecode: bool = True
    # The customer managed KMS key of an imported bucket that is SSE-KMS
    # (docs/ingestion.md): the function's role is granted its use (Decrypt; and
    # GenerateDataKey for the processed bucket, which it writes). Only with the bucket.
    ingestion_bucket_kms_key_arn: str | None = None
    processed_bucket_kms_key_arn: str | None = None
    # Where the alarm descriptions and the dashboard link the runbook: the path in the
    # repository by default; a URL (the repository's web view) makes them clickable.
    runbook_url: str = "docs/operations.md"
    # The freshness alarm fires when no invocation arrived for this many hours (the
    # ingestion stopped); 0 switches it off (a stage nothing invokes on a schedule).
    freshness_hours: int = 24
    # How many batches of fact packets the rebuild workflow's Distributed Map stages at
    # once (docs/rebuild.md): Lambda's account concurrency is shared with everything else.
    rebuild_max_concurrency: int = 4

    def __post_init__(self) -> None:
        _check(_STAGE.match(self.stage), "stage", self.stage,
               "lower-case letters, digits and '-', starting with a letter, at most 20 characters")  # fmt: skip
        if self.stack_name is not None:
            _check(_STACK_NAME.match(self.stack_name), "stack_name", self.stack_name,
                   "letters, digits and '-', starting with a letter")  # fmt: skip
        for key in ("ingestion_bucket", "processed_bucket"):
            value = getattr(self, key)
            if value is not None:
                _check(_BUCKET_NAME.match(value) and ".." not in value, key, value,
                       "an S3 bucket name")  # fmt: skip
        if self.ingestion_bucket is not None and self.ingestion_bucket == self.processed_bucket:
            raise ConfigError("ingestion_bucket and processed_bucket must be different buckets")
        _check(self.log_level in LOG_LEVELS, "log_level", self.log_level, f"one of {LOG_LEVELS}")
        _check(self.architecture in ARCHITECTURES, "architecture", self.architecture,
               f"one of {ARCHITECTURES}")  # fmt: skip
        low, high = LAMBDA_MEMORY_MB
        _check(low <= self.memory_mb <= high, "memory_mb", self.memory_mb,
               f"between {low} and {high}")  # fmt: skip
        _check(1 <= self.timeout_seconds <= LAMBDA_MAX_TIMEOUT_SECONDS, "timeout_seconds",
               self.timeout_seconds, f"between 1 and {LAMBDA_MAX_TIMEOUT_SECONDS}")  # fmt: skip
        _check(1 <= self.rebuild_max_concurrency <= 10_000, "rebuild_max_concurrency",
               self.rebuild_max_concurrency, "between 1 and 10000 (the Distributed Map's limit)")  # fmt: skip
        _check(self.log_retention_days in LOG_RETENTION_DAYS, "log_retention_days",
               self.log_retention_days, f"one of {LOG_RETENTION_DAYS}")  # fmt: skip
        for email in self.alarm_emails:
            _check(_EMAIL.match(email), "alarm_emails", email, "an email address")
        if len(set(self.alarm_emails)) != len(self.alarm_emails):
            raise ConfigError(f"alarm_emails: {list(self.alarm_emails)} names an address twice")
        if self.ingestion_role_arn is not None:
            if _FUNCTION_ARN.match(self.ingestion_role_arn):
                raise ConfigError(
                    f"ingestion_role_arn: {self.ingestion_role_arn!r} is a function ARN; give "
                    "the ARN of the ingestion Lambda's execution role (arn:aws:iam::…:role/…), "
                    "the identity Lambda checks when that function calls Invoke"
                )
            _check(_ROLE_ARN.match(self.ingestion_role_arn), "ingestion_role_arn",
                   self.ingestion_role_arn, "an IAM role ARN")  # fmt: skip

        for bucket_key in ("ingestion_bucket", "processed_bucket"):
            key_arn = getattr(self, f"{bucket_key}_kms_key_arn")
            if key_arn is None:
                continue
            _check(_KMS_KEY_ARN.match(key_arn), f"{bucket_key}_kms_key_arn", key_arn,
                   "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")  # fmt: skip
            if getattr(self, bucket_key) is None:
                raise ConfigError(f"{bucket_key}_kms_key_arn is for an imported bucket: pass {bucket_key} "
                                  "too (a bucket the stack creates is SSE-S3)")
        _check(0 <= self.freshness_hours <= MAX_FRESHNESS_HOURS, "freshness_hours", self.freshness_hours,
               f"between 0 (off) and {MAX_FRESHNESS_HOURS} hours")  # fmt: skip
        _check(_RUNBOOK.match(self.runbook_url), "runbook_url", self.runbook_url,
               "an https:// URL or a path ending in .md, without '#'")  # fmt: skip

    @property
    def resolved_stack_name(self) -> str:
        return self.stack_name or f"{DEFAULT_STACK_PREFIX}-{self.stage}"

    @property
    def ssm_prefix(self) -> str:
        """The packet-id parameters' path: /totesys/<stage>/processing."""
        return f"/totesys/{self.stage}/processing"

    @property
    def metric_namespace(self) -> str:
        """The runtime's CloudWatch namespace, which the alarms and the dashboard watch."""
        return f"{DEFAULT_NAMESPACE}/{self.stage}"

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> ProcessingConfig:
        """Build from a context lookup (`app.node.try_get_context`); None means default."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = get(field.name)
            if raw is None:
                continue
            values[field.name] = _coerce(field.name, field.type, raw)
        return cls(**values)

    @classmethod
    def defaults(cls) -> Mapping[str, Any]:
        """Each context key and its default, in declaration order (for docs and tests)."""
        return {f.name: f.default for f in dataclasses.fields(cls)}


# Context keys that are the CDK's, not settings: feature flags and lookups carry a ':'
# ("@aws-cdk/...", "aws:cdk:...", "availability-zones:..."); these few do not.
CDK_OWN_KEYS = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


def check_context_keys(keys: Iterable[str]) -> None:
    """Refuse a context key that is no setting (`-c stagee=prod`), naming the closest."""
    settings = [f.name for f in dataclasses.fields(ProcessingConfig)]
    for key in keys:
        if ":" in key or key.startswith("@") or key in CDK_OWN_KEYS or key in settings:
            continue
        close = difflib.get_close_matches(key, settings, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown context key {_shown(key)}{hint}; the settings are: {', '.join(settings)}")


def _shown(value: object) -> str:
    text = ascii(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text):,} characters)"


def _check(ok: object, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {_shown(value)} is not {expected}")


def _coerce(key: str, annotation: str, raw: Any) -> Any:
    """Turn a context value (JSON from cdk.json, or text from `-c`) into the field's type."""
    if annotation == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ConfigError(f"{key}: {_shown(raw)} is not true or false")
    if annotation == "int":
        if isinstance(raw, bool):
            raise ConfigError(f"{key}: {_shown(raw)} is not a whole number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"\d+", raw.strip()):
            return int(raw)
        raise ConfigError(f"{key}: {_shown(raw)} is not a whole number")
    if annotation == "tuple[str, ...]":
        if isinstance(raw, str):
            items = [part.strip() for part in raw.split(",")]
            return tuple(item for item in items if item)
        if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
            return tuple(item.strip() for item in raw)
        raise ConfigError(f"{key}: {_shown(raw)} is not a list of strings")
    if not isinstance(raw, str):
        raise ConfigError(f"{key}: {_shown(raw)} is not a string")
    value = raw.strip()
    if annotation == "str | None" and value == "":
        return None
    return value
