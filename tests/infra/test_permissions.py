"""Least privilege, through grants: what the function's role may do, and nothing more."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from cdk_app.config import ConfigError
from runtime.tables import SOURCE_TABLES, packet_id_parameters
from tests.infra.conftest import actions_of, build_stack, policy_statements, resources_of


def _statements_on(template_json, needle: str):
    """Statements whose Resource mentions `needle` (a logical id or a literal)."""
    return [s for s in policy_statements(template_json) if needle in json.dumps(s["Resource"])]


def _logical_id(template_json, resource_type: str, construct_path: str) -> str:
    """The logical id CDK made from a construct path (path + hash; the hash is not pinned)."""
    (logical_id,) = [k for k in resources_of(template_json, resource_type) if k.startswith(construct_path)]
    return logical_id


def test_role_has_no_managed_policies_and_only_lambda_assumes_it(template):
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {"Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    )
                ]
            },
            "ManagedPolicyArns": Match.absent(),
        },
    )


def test_ingestion_bucket_is_read_only_and_only_source_table_prefixes(template_json):
    bucket = _logical_id(template_json, "AWS::S3::Bucket", "IngestionBucket")
    statements = _statements_on(template_json, bucket)
    actions = {a for s in statements for a in actions_of(s)}
    assert actions == {"s3:GetObject", "s3:ListBucket"}
    object_patterns = set()
    for statement in statements:
        for resource in statement["Resource"]:
            text = json.dumps(resource)
            if "/" in text:
                object_patterns.add(resource["Fn::Join"][1][-1])
    assert object_patterns == {f"/{t.name}/*" for t in SOURCE_TABLES}


# Every action the function's role is granted, and why: the calls in runtime/adapters/.
EXPECTED_ACTIONS = {
    "s3:ListBucket": "S3Bucket.list_keys: list_objects_v2, paginated (both buckets)",
    "s3:GetObject": "S3Bucket.read, open, and the HeadObject of put_if_absent (authorized by GetObject)",
    "s3:PutObject": "S3Bucket.put_if_absent: conditional PutObject (processed bucket)",
    "s3:DeleteObject": "S3Bucket.delete: the function's own _pending/ marks (processed bucket)",
    "ssm:GetParameter": "SsmPacketIds.read_packet_id",
    "ssm:PutParameter": "SsmPacketIds.write_packet_id (Overwrite)",
    "logs:CreateLogStream": "the function's own log group",
    "logs:PutLogEvents": "the function's own log group",
    "sqs:SendMessage": "Lambda's on-failure destination, sent with the function's role",
    "sqs:GetQueueAttributes": "added by the SQS destination (CDK's grant_send_messages)",
    "sqs:GetQueueUrl": "added by the SQS destination (CDK's grant_send_messages)",
    "lambda:InvokeFunction": "FunctionInvoker.invoke_async: itself, to carry on with a backlog",
}


def _granted(template_json) -> dict[str, list]:
    granted: dict[str, list] = {}
    for statement in policy_statements(template_json):
        assert statement["Effect"] == "Allow"
        for action in actions_of(statement):
            granted.setdefault(action, []).append(statement["Resource"])
    return granted


@pytest.mark.parametrize("overrides", [{}, {"ingestion_bucket": "totes-in", "processed_bucket": "totes-out"}],
                         ids=["created buckets", "imported buckets"])  # fmt: skip
def test_every_granted_action_is_one_the_runtime_calls(overrides, synth):
    granted = _granted(synth(**overrides).to_json())
    print("\nIAM actions granted:\n" + "\n".join(f"  {a}: {EXPECTED_ACTIONS.get(a, 'UNEXPECTED')}" for a in sorted(granted)))
    assert sorted(granted) == sorted(EXPECTED_ACTIONS)
    assert not any("*" in action for action in granted)


def test_no_version_deletion_object_lock_or_parameter_history(template_json):
    granted = _granted(template_json)
    for forbidden in ("s3:DeleteObjectVersion", "s3:PutObjectLegalHold", "s3:PutObjectRetention",
                      "s3:BypassGovernanceRetention", "ssm:GetParameterHistory", "secretsmanager:GetSecretValue"):  # fmt: skip
        assert forbidden not in granted, forbidden


def test_processed_bucket_objects_read_write_and_delete(template_json):
    bucket = _logical_id(template_json, "AWS::S3::Bucket", "ProcessedBucket")
    statements = _statements_on(template_json, bucket)
    on_objects = {a for s in statements if "/*" in json.dumps(s["Resource"]) for a in actions_of(s)}
    assert on_objects == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}


def test_ssm_only_the_packet_id_parameters(template_json):
    ssm_statements = [s for s in policy_statements(template_json) if any(a.startswith("ssm:") for a in actions_of(s))]
    actions = {a for s in ssm_statements for a in actions_of(s)}
    assert actions == {"ssm:GetParameter", "ssm:PutParameter"}
    assert not any(a.endswith("*") for a in actions)
    referenced = set()
    for statement in ssm_statements:
        for resource in statement["Resource"]:
            # arn:…:parameter + {"Ref": <the parameter resource>}: one ARN per parameter.
            (ref,) = [part["Ref"] for part in resource["Fn::Join"][1] if isinstance(part, dict) and "Ref" in part and not part["Ref"].startswith("AWS::")]
            referenced.add(template_json["Resources"][ref]["Properties"]["Name"])
    assert referenced == set(packet_id_parameters("/totesys/dev/processing"))


def test_logs_only_to_its_own_log_group_and_no_put_metric_data(template_json):
    log_group = _logical_id(template_json, "AWS::Logs::LogGroup", "ProcessingLogs")
    log_statements = [s for s in policy_statements(template_json) if any(a.startswith("logs:") for a in actions_of(s))]
    (statement,) = log_statements
    assert set(actions_of(statement)) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert statement["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}
    # Metrics are embedded in the logs (EMF): no cloudwatch:PutMetricData.
    assert not any(a.startswith("cloudwatch:") for s in policy_statements(template_json) for a in actions_of(s))


def test_no_statement_allows_every_resource(template_json):
    for statement in policy_statements(template_json):
        assert statement["Resource"] != "*", statement


def test_ingestion_role_may_invoke(template, synth):
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "arn:aws:iam::123456789012:role/totesys-ingestion",
            "FunctionName": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
        },
    )
    synth(ingestion_role_arn="").resource_count_is("AWS::Lambda::Permission", 0)


def test_a_function_arn_is_refused_as_the_invoker():
    with pytest.raises(ConfigError, match="execution role"):
        build_stack({"ingestion_role_arn": "arn:aws:lambda:eu-west-2:123456789012:function:ingest"})


def test_the_function_may_invoke_itself_and_nothing_else(template_json):
    function = _logical_id(template_json, "AWS::Lambda::Function", "ProcessingFunction")
    statements = [s for s in policy_statements(template_json) if "lambda:InvokeFunction" in actions_of(s)]
    assert [s["Resource"] for s in statements] == [{"Fn::GetAtt": [function, "Arn"]}]
    assert template_json["Resources"][function]["Properties"]["RecursiveLoop"] == "Allow"
