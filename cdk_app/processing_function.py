"""The processing Lambda function with its role, log group, retries and dead-letter queue."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_app.bundling import Bytecode, bundled_code, resolve_bytecode, unbundled_code
from cdk_app.lambda_platform import Target

# Amazon Linux 2023 (glibc 2.34, which current pyarrow and numpy wheels need). The
# bundle is built for this version: cdk_app/bundling/ derives its pip target from it.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_12
HANDLER = "runtime.handler.lambda_handler"

# docs/design.md#ordering: SSM Parameter Store has no compare-and-swap, so one invocation at a time.
RESERVED_CONCURRENCY = 1
# docs/design.md#observability: an asynchronous invocation that fails is run twice more, minutes apart.
RETRY_ATTEMPTS = 2
# With one invocation at a time, events that arrive while it runs wait in Lambda's
# asynchronous queue as throttled retries; 6 hours (the most Lambda allows) keeps them
# waiting instead of discarding them. An event that does expire goes to the
# dead-letter queue like a failed one.
MAX_EVENT_AGE = Duration.hours(6)
DEAD_LETTER_RETENTION = Duration.days(14)


class ProcessingFunction(Construct):
    """The function, its own log group, and where a failed event ends up."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        architecture: lambda_.Architecture,
        memory_mb: int,
        timeout: Duration,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        log_level: str,
        bundle: bool,
        require_bytecode: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)

        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention)

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
            # Its messages are events that failed every attempt: deleting the stack must
            # not delete them (they are replayed after a fix, docs/deploy.md).
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(self.dead_letter_queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter store: the function's "
                "asynchronous on-failure destination. Its messages are redriven by hand "
                "after a fix (docs/deploy.md), so it has no queue of its own behind it.",
            )
        )

        # A role of its own, without AWSLambdaBasicExecutionRole (logs on every log
        # group): the function writes only to its own log group, granted below.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Totesys processing Lambda: its log group, the buckets, the packet ids",
        )

        self.bytecode: Bytecode | None = None
        if bundle:
            # The first build pip-installs the pinned wheels and compiles the bytecode:
            # say so, or a first synth is silent for the best part of a minute.
            print(f"Lambda asset ({architecture.name}): finding Python {LAMBDA_RUNTIME.name[-4:]}, then "
                  "building it unless cdk.out/ has it (about a minute the first time)...", file=sys.stderr, flush=True)
            self.bytecode = resolve_bytecode(Target.for_lambda(LAMBDA_RUNTIME, architecture), required=require_bytecode)
            if self.bytecode.interpreter is None:
                _warn_no_bytecode(self)
            code = bundled_code(runtime=LAMBDA_RUNTIME, architecture=architecture, bytecode=self.bytecode)
        else:
            code = unbundled_code()
            Annotations.of(self).add_warning_v2(
                "totesys:unbundled",
                "bundle=false: the function's code is runtime/ without its dependencies; "
                "fine for looking at the template, never deploy it",
            )
        self.code = code  # the rebuild workflow runs this same asset (cdk_app/rebuild_workflow.py)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Totesys processing: ingestion JSON lines to the Parquet star schema",
            runtime=LAMBDA_RUNTIME,
            handler=HANDLER,
            code=code,
            architecture=architecture,
            memory_size=memory_mb,
            timeout=timeout,
            reserved_concurrent_executions=RESERVED_CONCURRENCY,
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
            # JSON lines end to end: Lambda's own lines (START, REPORT) come as JSON too.
            # Lambda filters application lines by their "level"; the metrics' EMF lines have
            # none and count as INFO, so the filter never drops below INFO (the runtime's
            # LOG_LEVEL does the rest) and DEBUG passes when asked for.
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=(
                lambda_.ApplicationLogLevel.DEBUG if log_level == "DEBUG" else lambda_.ApplicationLogLevel.INFO
            ),
            system_log_level_v2=lambda_.SystemLogLevel.INFO,
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            # An invocation that stops before its timeout invokes itself to carry on
            # with a backlog (docs/design.md#backlog): a chain that Lambda's loop
            # detection would cut after 16 links. Every link has done a packet, so
            # the chain ends with the backlog.
            recursive_loop=lambda_.RecursiveLoop.ALLOW,
        )
        # Its own policy, attached after the function exists: on the role's default
        # policy (which the function depends on) its own ARN would be a cycle.
        iam.Policy(
            self,
            "InvokeItself",
            roles=[self.role],
            statements=[iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])],
        )
        # CloudWatch Logs only; metrics travel inside the logs as embedded metric
        # format, which CloudWatch extracts from the log group, so no
        # cloudwatch:PutMetricData is granted.
        self.log_group.grant_write(self.role)
        Validations.of(self.function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason=f"{LAMBDA_RUNTIME.name} on purpose: the bundle's wheels (pandas, "
                "pyarrow, numpy) are built, trimmed and size-tested for this version; moving "
                "to a newer Python is a change of LAMBDA_RUNTIME, proven by the bundling tests.",
            )
        )


def _warn_no_bytecode(scope: Construct) -> None:
    message = (
        "require_bytecode=false and no Python of the runtime's version found: the asset ships NO .pyc, so every cold start compiles about a "
        "thousand modules (seconds of billed INIT, near Lambda's 10 s cap). Install "
        f"Python {LAMBDA_RUNTIME.name.removeprefix('python')} and synthesize again without "
        "-c require_bytecode=false."
    )
    Annotations.of(scope).add_warning_v2("totesys:noBytecode", message)
    banner = "!" * 78
    print(f"{banner}\n!! {message}\n{banner}", file=sys.stderr)
