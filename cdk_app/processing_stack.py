"""The processing stack: composes the constructs, grants access, exports what callers need.

Least privilege means the actions the code calls, on the resources it touches
(docs/design.md#artefact), written out rather than taken from `Bucket.grant_*`, whose action groups include
`s3:DeleteObjectVersion` (the versions are the way back), Object Lock actions and
tagging, and `StringParameter.grant_read`, which includes `ssm:GetParameterHistory`:

- ingestion bucket: `s3:ListBucket` (listing a packet's objects, paginated) and
  `s3:GetObject` on the source tables' prefixes only;
- processed bucket: `s3:ListBucket`, and `s3:GetObject`, `s3:PutObject` (conditional
  puts, HeadObject is authorized by GetObject) and `s3:DeleteObject` (the function's own
  `_pending/` marks: on a versioned bucket a delete marker, never a version) on objects;
- the packet-id parameters under the stage's prefix: `ssm:GetParameter`, `ssm:PutParameter`;
- its own log group (`grant_write`), and the dead-letter queue (Lambda sends failed events
  there with the function's role; added by the on-failure destination).

CloudWatch metrics need no permission: they are embedded in the logs (EMF).
tests/infra/test_permissions.py lists every action granted and fails on any other.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Duration, Stack, Tags, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_app.alerting import Alerting
from cdk_app.buckets import data_bucket, grant_ingestion_writes, grant_key_use
from cdk_app.catalog import Catalog
from cdk_app.config import ProcessingConfig
from cdk_app.dashboard import processing_dashboard
from cdk_app.packet_ids import PacketIdParameters
from cdk_app.processing_function import ProcessingFunction
from cdk_app.rebuild_workflow import RebuildWorkflow
from runtime.names import NAMESPACE_ENV, SERVICE
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
            NAMESPACE_ENV: config.metric_namespace,
        }

        timeout = Duration.seconds(config.timeout_seconds)
        processing = ProcessingFunction(
            self,
            "Processing",
            architecture=_ARCHITECTURES[config.architecture],
            memory_mb=config.memory_mb,
            timeout=timeout,
            environment=environment,
            log_retention=_retention(config.log_retention_days),
            log_level=config.log_level,
            bundle=config.bundle,
            require_bytecode=config.require_bytecode,
        )
        function = processing.function

        _grant_data_access(function, ingestion=ingestion, processed=processed)
        packet_ids.grant_read_write(function)
        if config.ingestion_bucket_kms_key_arn:
            grant_key_use(function, config.ingestion_bucket_kms_key_arn, write=False)
        if config.processed_bucket_kms_key_arn:
            grant_key_use(function, config.processed_bucket_kms_key_arn, write=True)
        if config.ingestion_role_arn is not None:
            function.grant_invoke(iam.ArnPrincipal(config.ingestion_role_arn))
            grant_ingestion_writes(ingestion, config.ingestion_role_arn)

        alerting = Alerting(
            self,
            "Alerting",
            emails=config.alarm_emails,
            function=function,
            timeout=timeout,
            dead_letter_queue=processing.dead_letter_queue,
            namespace=config.metric_namespace,
            stage=config.stage,
            runbook_url=config.runbook_url,
            freshness_hours=config.freshness_hours,
        )
        processing_dashboard(
            self,
            "Dashboard",
            stage=config.stage,
            namespace=config.metric_namespace,
            function=function,
            dead_letter_queue=processing.dead_letter_queue,
            alarm_names=alerting.alarm_names,
            runbook_url=config.runbook_url,
        )
        rebuild = RebuildWorkflow(
            self, "Rebuild", code=processing.code, architecture=_ARCHITECTURES[config.architecture],
            memory_mb=config.memory_mb, environment=environment, ingestion_bucket_arn=ingestion.bucket_arn,
            ingestion_finding=_objects_finding(ingestion, "")[len("Resource::"):].rstrip("/"),
            stage=config.stage, max_concurrency=config.rebuild_max_concurrency,
            log_retention=_retention(config.log_retention_days),
        )
        catalog = Catalog(self, "Catalog", stage=config.stage, processed=processed)
        _tag_every_resource(self, stage=config.stage)

        _acknowledge_object_arns(processing.role, ingestion=ingestion, processed=processed)

        CfnOutput(self, "FunctionArn", value=function.function_arn,
                  description="Invoke asynchronously (InvocationType=Event) with {\"packets\": [...]}")  # fmt: skip
        CfnOutput(self, "FunctionName", value=function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=processing.dead_letter_queue.queue_url,
                  description="Events that failed every attempt; redrive after a fix")  # fmt: skip
        CfnOutput(self, "AlarmTopicArn", value=alerting.topic.topic_arn)
        CfnOutput(self, "IngestionBucketName", value=ingestion.bucket_name)
        CfnOutput(self, "RebuildStateMachineArn", value=rebuild.state_machine.state_machine_arn,
                  description="Start with {\"target\": {\"bucket\": ..., \"ssm_prefix\": ...}} (docs/rebuild.md)")  # fmt: skip
        CfnOutput(self, "ProcessedBucketName", value=processed.bucket_name)
        # What `python -m runtime.operations --stage <stage>` reads, with the outputs above.
        CfnOutput(self, "SsmPrefix", value=config.ssm_prefix)
        CfnOutput(self, "GlueDatabaseName", value=catalog.database_name,
                  description="Query its views (named as the warehouse's tables) with Athena")  # fmt: skip
        CfnOutput(self, "AthenaWorkGroupName", value=catalog.workgroup.name)
        CfnOutput(self, "AnalystPolicyArn", value=catalog.analyst_policy.managed_policy_arn,
                  description="Attach to analysts' roles or groups to query the views")  # fmt: skip
        CfnOutput(self, "QueryResultsBucketName", value=catalog.results.bucket_name)


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


# The tags on every taggable resource. Not on the packet-id parameters: CloudFormation
# updates a parameter whose tags change by writing its template value ("0") over the live
# id (cdk_app/packet_ids.py), so a tag added later would rewind every table.
TAGS = {"project": "totesys", "component": "processing"}
UNTAGGED_TYPES = ("AWS::SSM::Parameter",)


def _tag_every_resource(stack: Stack, *, stage: str) -> None:
    for key, value in {**TAGS, "stage": stage}.items():
        Tags.of(stack).add(key, value, exclude_resource_types=list(UNTAGGED_TYPES))


def _grant_data_access(function: lambda_.IFunction, *, ingestion: s3.IBucket, processed: s3.IBucket) -> None:
    """The S3 actions the runtime's adapters call (runtime/adapters/s3.py), and no other."""
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[ingestion.bucket_arn, processed.bucket_arn])
    )
    # Only the source tables' prefixes: tables without a consumer yet are never read.
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[ingestion.arn_for_objects(_source_objects(source.name)) for source in SOURCE_TABLES],
        )
    )
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[processed.arn_for_objects("*")],
        )
    )


def _acknowledge_object_arns(
    role: iam.IRole, *, ingestion: s3.IBucket, processed: s3.IBucket
) -> None:
    """Acknowledge cdk-nag's IAM5 findings for the object ARNs, one by one, with reasons."""
    for source in SOURCE_TABLES:
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[{_objects_finding(ingestion, _source_objects(source.name))}]",
                reason=f"Packet keys are {source.name}/{source.name}_packet_<id>_<timestamp>"
                ".jsonl[.gz]; ids and timestamps are only known at run time (docs/design.md#input-layout).",
            )
        )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[{_objects_finding(processed, '*')}]",
            reason="The processed bucket is the function's own: it writes every output "
            "table's prefix and its _state/, _pending/, _commits/ and _quarantine/ records, "
            "with keys made at run time (docs/design.md#keys, #ordering).",
        )
    )


def _objects_finding(bucket: s3.IBucket, pattern: str) -> str:
    """How cdk-nag names the resource `<bucket ARN>/<pattern>` in a finding."""
    cfn_bucket = bucket.node.default_child
    if isinstance(cfn_bucket, s3.CfnBucket):
        logical_id = Stack.of(bucket).resolve(cfn_bucket.logical_id)
        return f"Resource::<{logical_id}.Arn>/{pattern}"
    return f"Resource::arn:<AWS::Partition>:s3:::{bucket.bucket_name}/{pattern}"
