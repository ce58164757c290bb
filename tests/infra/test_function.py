"""The Lambda function: runtime, handler, sizing, concurrency, environment, logs, retries."""

from __future__ import annotations

from aws_cdk.assertions import Annotations, Capture, Match

from cdk_app.config import ProcessingConfig
from cdk_app.processing_function import HANDLER, LAMBDA_RUNTIME
from tests.infra.conftest import build_stack, resources_of


def _function(template_json):
    # The processing function (the rebuild workflow's has tests of its own).
    (function,) = [f for k, f in resources_of(template_json, "AWS::Lambda::Function").items()
                   if k.startswith("ProcessingFunction")]
    return function["Properties"]


def test_handler_and_python_runtime_on_amazon_linux_2023(template):
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "runtime.handler.lambda_handler", "Runtime": LAMBDA_RUNTIME.name},
    )
    assert HANDLER == "runtime.handler.lambda_handler"
    # python3.12 and later run on Amazon Linux 2023 (glibc 2.34; pyarrow wheels need 2.28).
    major, minor = (int(part) for part in LAMBDA_RUNTIME.name.removeprefix("python").split("."))
    assert (major, minor) >= (3, 12)


def test_arm64_by_default_and_x86_64_on_request(template, synth):
    template.has_resource_properties("AWS::Lambda::Function", {"Architectures": ["arm64"]})
    synth(architecture="x86_64").has_resource_properties(
        "AWS::Lambda::Function", {"Architectures": ["x86_64"]}
    )


def test_memory_and_timeout_defaults_and_overrides(template, synth):
    defaults = ProcessingConfig()
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"MemorySize": defaults.memory_mb, "Timeout": defaults.timeout_seconds},
    )
    assert (defaults.memory_mb, defaults.timeout_seconds) == (3008, 600)
    synth(memory_mb="4096", timeout_seconds="900").has_resource_properties(
        "AWS::Lambda::Function", {"MemorySize": 4096, "Timeout": 900}
    )


def test_one_invocation_at_a_time(template):
    # docs/design.md#ordering: SSM has no compare-and-swap.
    template.has_resource_properties("AWS::Lambda::Function", {"ReservedConcurrentExecutions": 1})


def test_environment_per_design_section_9(template_json):
    variables = _function(template_json)["Environment"]["Variables"]
    assert variables["SSM_PREFIX"] == "/totesys/dev/processing"
    assert variables["LOG_LEVEL"] == "INFO"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "totesys-processing"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "TotesysProcessing/dev"
    assert "SECRET_NAME" not in variables
    # The buckets created by the stack are referenced, not named by hand.
    assert set(variables["INGESTION_BUCKET"]) == {"Ref"}
    assert set(variables["PROCESSED_BUCKET"]) == {"Ref"}
    assert variables["INGESTION_BUCKET"] != variables["PROCESSED_BUCKET"]


def test_environment_names_imported_buckets_and_follows_the_stage(synth):
    template = synth(
        ingestion_bucket="totes-ingestion",
        processed_bucket="totes-processed",
        stage="staging",
        log_level="DEBUG",
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": {
                    "INGESTION_BUCKET": "totes-ingestion",
                    "PROCESSED_BUCKET": "totes-processed",
                    "SSM_PREFIX": "/totesys/staging/processing",
                    "LOG_LEVEL": "DEBUG",
                    "POWERTOOLS_METRICS_NAMESPACE": "TotesysProcessing/staging",
                }
            }
        },
    )


def test_own_log_group_with_retention(template, synth):
    log_group = Capture()
    template.has_resource_properties(
        "AWS::Lambda::Function", {"LoggingConfig": {"LogGroup": {"Ref": log_group}}}
    )
    template.has_resource("AWS::Logs::LogGroup", {"Properties": {"RetentionInDays": 90}})
    assert template.to_json()["Resources"][log_group.as_string()]["Type"] == "AWS::Logs::LogGroup"
    synth(log_retention_days=30).has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": 30}
    )


def test_async_retries_and_dead_letter_queue(template):
    queue = Capture()
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": Match.any_value()},
            "Qualifier": "$LATEST",
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 6 * 3600,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
        },
    )
    resources = template.to_json()["Resources"]
    assert resources[queue.as_string()]["Type"] == "AWS::SQS::Queue"
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {"MessageRetentionPeriod": 14 * 24 * 3600, "SqsManagedSseEnabled": True},
    )


def test_dead_letter_queue_refuses_plain_http(template):
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_an_unbundled_asset_is_flagged_as_not_deployable():
    _, stack = build_stack({"bundle": False})
    Annotations.from_stack(stack).has_warning("*", Match.string_like_regexp("never deploy it"))


def test_json_logs_filtered_no_higher_than_info(template, synth):
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "INFO"}},
    )
    # The metrics' EMF lines carry no level (Lambda counts them as INFO): never filtered out.
    synth(log_level="ERROR").has_resource_properties(
        "AWS::Lambda::Function", {"LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "INFO"}}
    )
    synth(log_level="DEBUG").has_resource_properties(
        "AWS::Lambda::Function", {"LoggingConfig": {"ApplicationLogLevel": "DEBUG"}}
    )


def test_dead_letter_queue_outlives_the_stack(template):
    template.has_resource("AWS::SQS::Queue", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})


def test_every_taggable_resource_is_tagged_with_the_stage(synth):
    from cdk_app.processing_stack import UNTAGGED_TYPES

    # Resource types CloudFormation has no Tags property for.
    untaggable = {"AWS::IAM::Policy", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
                  "AWS::SNS::Subscription", "AWS::Lambda::EventInvokeConfig", "AWS::Lambda::Permission",
                  "AWS::CDK::Metadata", "AWS::Glue::Database", "AWS::Glue::Table",
                  "AWS::IAM::ManagedPolicy"}  # fmt: skip
    resources = synth(stage="prod").to_json()["Resources"]
    checked = 0
    for logical_id, resource in resources.items():
        if resource["Type"] in untaggable or resource["Type"] in UNTAGGED_TYPES:
            assert "Tags" not in resource.get("Properties", {}), logical_id
            continue
        tags = {tag["Key"]: tag["Value"] for tag in resource["Properties"].get("Tags", [])}
        assert {"project": "totesys", "component": "processing", "stage": "prod"}.items() <= tags.items(), logical_id
        checked += 1
    assert checked >= 15  # buckets, role, function, queue, topic, key, log group, alarms
