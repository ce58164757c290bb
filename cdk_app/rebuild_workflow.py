"""The rebuild workflow (docs/rebuild.md, docs/design.md#rebuild): a Step Functions
Standard workflow with a Distributed Map over the fact packets, running the processing
code asset in rebuild mode.

A second function from the same asset (not the live one: that runs one invocation at a
time, and the Map's items run in parallel), with the longest timeout Lambda allows; each
call of it stays well inside it (runtime/rebuild/steps.py stops between packets).

    Plan → Dimensions (looped until done) → StageFacts (Distributed Map: the items file
    the plan wrote, batched, MaxConcurrency from the config) → Commit (looped) → Report

A target is a bucket named `totesys-<stage>-generation-<name>` with packet ids under
`/totesys/<stage>/generations/<name>`; the execution input names it:
`{"target": {"bucket": "...", "ssm_prefix": "..."}}`. Any failure after the retries ends
in the Failed state: the target holds what was committed, starting the workflow again
with the same input resumes it, and nothing is switched (switching is the operator's
step, docs/rebuild.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Acknowledgment, Aws, Duration, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk_app.processing_function import HANDLER, LAMBDA_RUNTIME
from runtime.tables import SOURCE_TABLES

# One call of a step: Lambda's limit (the steps stop minutes before it).
REBUILD_TIMEOUT = Duration.minutes(15)
# Fact packets per Map item batch: a few seconds of work each, so a batch is a minute
# or two and a failed batch costs little to redo.
ITEMS_PER_BATCH = 4
FUNCTION_ARN = "${RebuildFunctionArn}"  # substituted in the definition at deploy time
_LAMBDA_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                  "Lambda.TooManyRequestsException"]  # fmt: skip


def target_bucket_pattern(stage: str) -> str:
    return f"totesys-{stage}-generation-*"


def target_ssm_path(stage: str) -> str:
    return f"/totesys/{stage}/generations"


def definition(function_arn: str, max_concurrency: int) -> dict:
    """The state machine's Amazon States Language, for `function_arn`."""

    def step(name: str, payload: Mapping, selector: Mapping, result_path: str | None, next_state: str | None) -> dict:
        state = {
            "Type": "Task",
            "Comment": f"runtime.rebuild.steps.{name}",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function_arn, "Payload": {"rebuild": {"step": name, **payload}}},
            "ResultSelector": dict(selector),
            "ResultPath": result_path,
            "Retry": _retries(),
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
        }
        return state | ({"Next": next_state} if next_state else {"End": True})

    target = {"target.$": "$.target"}
    return {
        "Comment": "Rebuild the warehouse from its ingestion history into a new target (docs/rebuild.md)",
        "StartAt": "Plan",
        "States": {
            "Plan": step("plan", target, {"items_key.$": "$.Payload.items_key", "fact_items.$": "$.Payload.fact_items"},
                         "$.plan", "Dimensions"),
            "Dimensions": step("dimensions", target, {"done.$": "$.Payload.dimensions_done"}, "$.dimensions",
                               "DimensionsDone"),
            "DimensionsDone": _loop("$.dimensions.done", "StageFacts", "Dimensions"),
            "StageFacts": {
                "Type": "Map",
                "Comment": "Each fact packet read, screened, built, validated and staged, in parallel",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.target.bucket", "Key.$": "$.plan.items_key"},
                },
                "ItemBatcher": {"MaxItemsPerBatch": ITEMS_PER_BATCH, "BatchInput": {"target.$": "$.target"}},
                "MaxConcurrency": max_concurrency,
                "ToleratedFailurePercentage": 0,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Stage",
                    "States": {
                        "Stage": {
                            "Type": "Task",
                            "Comment": "runtime.rebuild.steps.stage_items",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {
                                "FunctionName": function_arn,
                                "Payload": {"rebuild": {"step": "stage", "target.$": "$.BatchInput.target",
                                                        "items.$": "$.Items"}},
                            },
                            "ResultSelector": {"rows.$": "$.Payload.rows"},
                            "Retry": _retries(),
                            "End": True,
                        }
                    },
                },
                "ResultPath": None,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
                "Next": "Commit",
            },
            "Commit": step("commit", target, {"done.$": "$.Payload.commit_done"}, "$.commit", "CommitDone"),
            "CommitDone": _loop("$.commit.done", "Report", "Commit"),
            "Report": step("report", target, {"report.$": "$.Payload"}, "$.report", None),
            "Failed": {
                "Type": "Fail",
                "Error": "RebuildFailed",
                "Cause": "The target holds what was committed and nothing was switched: start the workflow "
                "again with the same input to resume (docs/rebuild.md).",
            },
        },
    }


def _retries() -> list[dict]:
    return [
        {"ErrorEquals": _LAMBDA_ERRORS, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2},
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2},
    ]


def _loop(done: str, then: str, again: str) -> dict:
    return {"Type": "Choice", "Choices": [{"Variable": done, "BooleanEquals": True, "Next": then}], "Default": again}


class RebuildWorkflow(Construct):
    """The rebuild function (the processing asset, rebuild mode) and the state machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        architecture: lambda_.Architecture,
        memory_mb: int,
        environment: Mapping[str, str],
        ingestion_bucket_arn: str,
        ingestion_finding: str,
        stage: str,
        max_concurrency: int,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Totesys rebuild: the ingestion bucket (read), generation targets")  # fmt: skip
        self.function = lambda_.Function(
            self,
            "Function",
            description="Totesys rebuild mode of the processing code (runtime/rebuild)",
            runtime=LAMBDA_RUNTIME,
            handler=HANDLER,
            code=code,
            architecture=architecture,
            memory_size=memory_mb,
            timeout=REBUILD_TIMEOUT,
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            # Step Functions retries; Lambda's own retries are for asynchronous calls.
            retry_attempts=0,
        )
        self.log_group.grant_write(self.role)
        Validations.of(self.function).acknowledge(Acknowledgment(
            id="AwsSolutions-L1", reason="The processing function's asset and runtime, on purpose "
            "(cdk_app/processing_function.py)."))
        partition = Aws.PARTITION
        bucket = f"arn:{partition}:s3:::{target_bucket_pattern(stage)}"
        parameters = f"arn:{partition}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{target_ssm_path(stage)}/*"
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[ingestion_bucket_arn, bucket]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[f"{ingestion_bucket_arn}/{t.name}/*" for t in SOURCE_TABLES]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources=[f"{bucket}/*"]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["ssm:GetParameter", "ssm:PutParameter"],
                                                    resources=[parameters]))  # fmt: skip

        # Named, so the role's policy can name its child executions without a cycle.
        name = f"totesys-{stage}-rebuild"
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            # The definition's own JSON (its `"ResultPath": null` kept), the function's
            # ARN substituted by CloudFormation.
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition(FUNCTION_ARN, max_concurrency))),
            definition_substitutions={FUNCTION_ARN[2:-1]: self.function.function_arn},
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=logs.LogGroup(self, "WorkflowLogs", retention=log_retention),
                                level=sfn.LogLevel.ALL),  # fmt: skip
        )
        machine = self.state_machine
        self.function.grant_invoke(machine)
        machine.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{bucket}/*"]))
        # The Distributed Map runs its batches as child executions of this state machine.
        machine.add_to_role_policy(iam.PolicyStatement(
            actions=["states:StartExecution", "states:DescribeExecution", "states:StopExecution"],
            resources=[f"arn:{partition}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{name}",
                       f"arn:{partition}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{name}/*"],
        ))  # fmt: skip
        self._acknowledge(stage, ingestion_finding)

    def _acknowledge(self, stage: str, ingestion_finding: str) -> None:
        """cdk-nag's findings on the wildcards, one by one, with reasons."""
        why = {
            f"arn:<AWS::Partition>:s3:::{target_bucket_pattern(stage)}":
                "a rebuild target is a new generation bucket the operator names at run time",
            f"arn:<AWS::Partition>:s3:::{target_bucket_pattern(stage)}/*":
                "the rebuild writes every table's prefix and its records in the target, keys made at run time",
            f"arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter{target_ssm_path(stage)}/*":
                "a generation's packet ids live under its own prefix, named at run time",
            "<RebuildFunction956AE4E4.Arn>:*": "CDK's grant_invoke: the function's versions and aliases",
            f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:totesys-{stage}-rebuild/*":
                "the Distributed Map's child executions are named at run time",
            "*": "X-Ray and CloudWatch Logs delivery take no resource (CDK's tracing and logging grants)",
            **{f"{ingestion_finding}/{t.name}/*": "packet keys carry ids and timestamps known only at run time"
               for t in SOURCE_TABLES},
        }
        for construct in (self.role, self.state_machine):
            for resource, reason in why.items():
                Validations.of(construct).acknowledge(
                    Acknowledgment(id=f"AwsSolutions-IAM5[Resource::{resource}]", reason=reason + ".")
                )
