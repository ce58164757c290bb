"""The processing stack: composes the constructs, grants access, exports what callers need.

Every permission is a `grant_*` on the resource it concerns, so each is as narrow as
that resource: the function reads the ingestion bucket, reads, writes and deletes in
the processed bucket, reads and writes only the packet-id parameters under its prefix,
reads one secret if one is configured, and writes to its own log group. CloudWatch
metrics need no permission: they are embedded in the logs (EMF).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_app.alerting import Alerting
from cdk_app.buckets import data_bucket
from cdk_app.config import ProcessingConfig
from cdk_app.packet_ids import PacketIdParameters
from cdk_app.processing_function import ProcessingFunction
from runtime.observability import DEFAULT_NAMESPACE, NAMESPACE_ENV, SERVICE
from runtime.tables import SOURCE_TABLES

_ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class ProcessingStack(Stack):
    """The processing Lambda and everything it needs, configured by a ProcessingConfig."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProcessingConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        ingestion = data_bucket(self, "IngestionBucket", bucket_name=config.ingestion_bucket)
        processed = data_bucket(self, "ProcessedBucket", bucket_name=config.processed_bucket)
        packet_ids = PacketIdParameters(self, "PacketIds", prefix=config.ssm_prefix)

        environment = {
            "INGESTION_BUCKET": ingestion.bucket_name,
            "PROCESSED_BUCKET": processed.bucket_name,
            "SSM_PREFIX": config.ssm_prefix,
            "LOG_LEVEL": config.log_level,
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            NAMESPACE_ENV: DEFAULT_NAMESPACE,
        }
        if config.secret_name is not None:
            environment["SECRET_NAME"] = config.secret_name

        timeout = Duration.seconds(config.timeout_seconds)
        processing = ProcessingFunction(
            self,
            "Processing",
            architecture=_ARCHITECTURES[config.architecture],
            memory_mb=config.memory_mb,
            timeout=timeout,
            environment=environment,
            log_retention=_retention(config.log_retention_days),
            bundle=config.bundle,
            require_bytecode=config.require_bytecode,
        )
        function = processing.function

        # Only the source tables' prefixes: tables without a consumer yet are never read.
        for source in SOURCE_TABLES:
            ingestion.grant_read(function, _source_objects(source.name))
        processed.grant_read_write(function)
        processed.grant_delete(function)  # the function deletes its own _pending/ marks
        packet_ids.grant_read_write(function)
        if config.secret_name is not None:
            secret = secretsmanager.Secret.from_secret_name_v2(self, "Secret", config.secret_name)
            secret.grant_read(function)
        if config.ingestion_role_arn is not None:
            function.grant_invoke(iam.ArnPrincipal(config.ingestion_role_arn))

        alerting = Alerting(
            self,
            "Alerting",
            emails=config.alarm_emails,
            function=function,
            timeout=timeout,
            dead_letter_queue=processing.dead_letter_queue,
        )

        _acknowledge_s3_wildcards(processing.role, ingestion=ingestion, processed=processed)

        CfnOutput(self, "FunctionArn", value=function.function_arn,
                  description="Invoke asynchronously (InvocationType=Event) with {\"packets\": [...]}")  # fmt: skip
        CfnOutput(self, "FunctionName", value=function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=processing.dead_letter_queue.queue_url,
                  description="Events that failed every attempt; redrive after a fix")  # fmt: skip
        CfnOutput(self, "AlarmTopicArn", value=alerting.topic.topic_arn)
        CfnOutput(self, "IngestionBucketName", value=ingestion.bucket_name)
        CfnOutput(self, "ProcessedBucketName", value=processed.bucket_name)


def _retention(days: int) -> logs.RetentionDays:
    by_days = {
        1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
        30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
        150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
        545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
        2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
        3653: "TEN_YEARS",
    }  # fmt: skip
    return logs.RetentionDays[by_days[days]]


def _source_objects(table: str) -> str:
    return f"{table}/*"


# Why each wildcard that the bucket grants above put in the role's policy is needed.
_S3_ACTION_WILDCARDS = {
    "s3:GetObject*": "reading packet objects and the processor's own records (GetObject; "
    "HeadObject is authorized by it too)",
    "s3:GetBucket*": "bucket-level reads that come with Bucket.grant_read (location, "
    "versioning) used by the SDK",
    "s3:List*": "listing every object of a packet, paginated (ListBucket)",
    "s3:Abort*": "aborting a multipart upload of a large Parquet file that failed midway",
    "s3:DeleteObject*": "deleting the function's own _pending/ marks (DESIGN §6)",
}


def _acknowledge_s3_wildcards(
    role: iam.IRole, *, ingestion: s3.IBucket, processed: s3.IBucket
) -> None:
    """Acknowledge cdk-nag's IAM5 findings for the S3 grants, one by one, with reasons.

    The wildcards come from `Bucket.grant_*` and are confined to the two buckets.
    """
    for action, why in _S3_ACTION_WILDCARDS.items():
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Action::{action}]",
                reason=f"{action} is an action group from Bucket.grant_*, limited to the "
                f"ingestion and processed buckets; needed for {why}.",
            )
        )
    for source in SOURCE_TABLES:
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[{_objects_finding(ingestion, _source_objects(source.name))}]",
                reason=f"Packet keys are {source.name}/{source.name}_packet_<id>_<timestamp>"
                ".jsonl[.gz]; ids and timestamps are only known at run time (DESIGN §3).",
            )
        )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[{_objects_finding(processed, '*')}]",
            reason="The processed bucket is the function's own: it writes every output "
            "table's prefix and its _state/, _pending/, _commits/ and _quarantine/ records, "
            "with keys made at run time (DESIGN §5, §6).",
        )
    )


def _objects_finding(bucket: s3.IBucket, pattern: str) -> str:
    """How cdk-nag names the resource `<bucket ARN>/<pattern>` in a finding."""
    cfn_bucket = bucket.node.default_child
    if isinstance(cfn_bucket, s3.CfnBucket):
        logical_id = Stack.of(bucket).resolve(cfn_bucket.logical_id)
        return f"Resource::<{logical_id}.Arn>/{pattern}"
    return f"Resource::arn:<AWS::Partition>:s3:::{bucket.bucket_name}/{pattern}"
