"""Where the on-call commands act, and what to tell the person when they cannot.

A deployed stage is found by its stack's outputs (`--stage` or `--stack`); without
either, the environment names the buckets and the rest (a local sandbox, or a shell
set up by hand). A setting that is missing or malformed is refused with one line
saying what to set. An AWS failure is named for what it is: no region, no
credentials, the endpoint unreachable, or AWS refusing the call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from runtime.errors import PacketIdNotFoundError, StorageError, StorageUnavailableError
from runtime.operations_args import shown
from runtime.tables import DEFAULT_SSM_PREFIX

# The stack of a stage is named TotesysProcessing-<stage> (cdk_app/config.py).
STACK_PREFIX = "TotesysProcessing"
# The stack's outputs (cdk_app/processing_stack.py) and the environment variables
# that stand in for them, per setting.
OUTPUTS = {
    "ingestion_bucket": ("IngestionBucketName", "INGESTION_BUCKET"),
    "processed_bucket": ("ProcessedBucketName", "PROCESSED_BUCKET"),
    "ssm_prefix": ("SsmPrefix", "SSM_PREFIX"),
    "function": ("FunctionName", "PROCESSING_FUNCTION"),
    "dead_letter_queue_url": ("DeadLetterQueueUrl", "DEAD_LETTER_QUEUE_URL"),
}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9_.-]+){1,10}$")


class SettingMissing(ValueError):
    """A setting the command needs is missing or malformed; the message says what to set."""


class AwsFailure(Exception):
    """An AWS call failed; the message names the kind of failure."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Location:
    description: str  # "stack TotesysProcessing-prod (eu-west-2)" or "the environment"
    from_stack: bool = False
    ingestion_bucket: str | None = None
    processed_bucket: str | None = None
    ssm_prefix: str | None = None
    function: str | None = None
    dead_letter_queue_url: str | None = None

    def need(self, setting: str) -> str:
        value = getattr(self, setting)
        if value:
            return value
        output, variable = OUTPUTS[setting]
        if self.from_stack:
            raise SettingMissing(f"{self.description} has no output {output}: deploy the current "
                                 f"stack, or export {variable}")
        raise SettingMissing(f"{variable} is not set: pass --stage STAGE (or --stack NAME) to read it from "
                             f"the deployed stack, or export {variable}")


def locate(args, env: Mapping[str, str], clients) -> Location:
    """The stack's outputs when --stage/--stack is given, else the environment; the
    command line's --function and --queue-url win over either."""
    stack = getattr(args, "stack", None) or (f"{STACK_PREFIX}-{args.stage}" if getattr(args, "stage", None) else None)
    if stack:
        outputs = clients.stack_outputs(stack)
        values = {name: outputs.get(output) for name, (output, _) in OUTPUTS.items()}
        if not values["ssm_prefix"] and getattr(args, "stage", None):
            values["ssm_prefix"] = f"/totesys/{args.stage}/processing"  # stacks from before the output
        where = Location(f"stack {stack} ({clients.region})", True, **values)
    else:
        values = {name: (env.get(variable) or "").strip() or None for name, (_, variable) in OUTPUTS.items()}
        values["ssm_prefix"] = values["ssm_prefix"] or DEFAULT_SSM_PREFIX
        where = Location("the environment (no --stage)", False, **values)
    overrides = {"function": getattr(args, "function", None), "dead_letter_queue_url": getattr(args, "queue_url", None)}
    where = Location(**{f.name: overrides.get(f.name) or getattr(where, f.name) for f in fields(Location)})
    _check(where)
    return where


def _check(where: Location) -> None:
    for setting in ("ingestion_bucket", "processed_bucket"):
        value = getattr(where, setting)
        if value is not None and not _BUCKET.match(value):
            raise SettingMissing(f"{OUTPUTS[setting][1]}={shown(value)} is not an S3 bucket name")
    if where.ssm_prefix is not None and not _PREFIX.match(where.ssm_prefix.rstrip("/")):
        raise SettingMissing(f"SSM_PREFIX={shown(where.ssm_prefix)} is not a parameter path like "
                             "/totesys/<stage>/processing")


# --- AWS failures, named -------------------------------------------------------------

NO_REGION = ("no AWS region: export AWS_REGION=<region> (or AWS_DEFAULT_REGION, or AWS_PROFILE "
             "naming a profile with a region)")
NO_CREDENTIALS = ("no AWS credentials: export AWS_PROFILE=<profile> (then `aws sso login` if it uses "
                  "SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
_BAD_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                    "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken"}
_NOT_FOUND = {"NoSuchBucket", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
              "ResourceNotFoundException", "ParameterNotFound"}


def explain(exc: BaseException) -> AwsFailure | None:
    """An AWS failure (raw from boto3, or translated by the adapters) as one line of
    what it is and what to do; None for anything else (a bug: let it show)."""
    from botocore import exceptions as bx

    if isinstance(exc, PacketIdNotFoundError):
        return AwsFailure(f"not found: {exc}; is --stage (or SSM_PREFIX) the deployed one?", 2)
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in chain:
        if isinstance(cause, bx.NoRegionError):
            return AwsFailure(NO_REGION, 2)
        if isinstance(cause, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError,
                              bx.TokenRetrievalError, bx.SSOTokenLoadError)):
            return AwsFailure(f"{NO_CREDENTIALS} ({type(cause).__name__})", 2)
        if isinstance(cause, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                              bx.ConnectionClosedError, bx.ProxyConnectionError)):
            return AwsFailure(f"unreachable: {cause} (network, VPN, proxy or AWS_ENDPOINT_URL?); "
                              "nothing was changed", 1)
        if isinstance(cause, bx.ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            if code in _BAD_CREDENTIALS:
                return AwsFailure(f"credentials refused ({code}): they are expired or not for this account; "
                                  f"renew them (`aws sso login`) or export AWS_PROFILE; {cause}", 2)
            if code in _DENIED:
                return AwsFailure(f"denied by IAM ({code}): the role you run as may not do this; {cause}", 1)
            if code in _NOT_FOUND:
                return AwsFailure(f"not found ({code}): {cause}; is --stage (or the environment) right?", 2)
            return AwsFailure(f"AWS refused the call ({code}): {cause}", 1)
    if isinstance(exc, StorageUnavailableError):
        return AwsFailure(f"unreachable or failing after retries: {exc}", 1)
    if isinstance(exc, StorageError):
        return AwsFailure(f"AWS refused the call: {exc}", 1)
    return None
