"""Alerting: an encrypted topic that emails the administrators, and the alarms on it."""

from __future__ import annotations

import json

from aws_cdk.assertions import Annotations, Capture, Match

from runtime.observability import METRIC_NAMES
from tests.infra.conftest import build_stack, resources_of


def _alarms(template_json):
    return list(resources_of(template_json, "AWS::CloudWatch::Alarm").values())


def test_topic_encrypted_with_a_rotated_customer_key_and_tls_only(template):
    key = Capture()
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
    assert template.to_json()["Resources"][key.as_string()]["Type"] == "AWS::KMS::Key"


def test_cloudwatch_may_publish_and_use_the_key(template):
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Allow", "Action": "sns:Publish",
                                        "Principal": {"Service": "cloudwatch.amazonaws.com"}})]
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [Match.object_like({"Principal": {"Service": "cloudwatch.amazonaws.com"},
                                        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"]})]
                )
            }
        },
    )


def test_an_email_subscription_per_administrator(template, synth):
    for email in ("data-oncall@example.com", "lead@example.com"):
        template.has_resource_properties(
            "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": email, "TopicArn": {"Ref": Match.any_value()}}
        )
    synth(alarm_emails="a@example.com,b@example.com,c@example.com").resource_count_is("AWS::SNS::Subscription", 3)


def test_every_alarm_notifies_the_topic_on_alarm_and_on_recovery(template_json):
    (topic,) = resources_of(template_json, "AWS::SNS::Topic")
    alarms = _alarms(template_json)
    assert alarms
    for alarm in alarms:
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [{"Ref": topic}]
        assert properties["OKActions"] == [{"Ref": topic}]
        assert properties["TreatMissingData"] == "notBreaching"
        assert properties["AlarmDescription"]


def test_errors_after_repeated_failure(template):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum",
         "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 1,
         "ComparisonOperator": "GreaterThanOrEqualToThreshold",
         "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": Match.any_value()}}]},
    )


def test_any_message_in_the_dead_letter_queue(template):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
         "Statistic": "Maximum", "Threshold": 1, "EvaluationPeriods": 1,
         "ComparisonOperator": "GreaterThanOrEqualToThreshold",
         "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [Match.any_value(), "QueueName"]}}]},
    )


def test_sustained_throttles(template):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"Namespace": "AWS/Lambda", "MetricName": "Throttles", "Statistic": "Sum",
         "EvaluationPeriods": 3, "DatapointsToAlarm": 3, "Threshold": 1},
    )


def test_duration_near_the_timeout(template, synth):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"Namespace": "AWS/Lambda", "MetricName": "Duration", "Statistic": "Maximum",
         "Threshold": 480_000, "ComparisonOperator": "GreaterThanThreshold"},
    )
    synth(timeout_seconds=900).has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "Duration", "Threshold": 720_000}
    )


def test_runtime_metrics_alarm_across_every_table(template_json):
    expressions = {}
    for alarm in _alarms(template_json):
        for query in alarm["Properties"].get("Metrics", []):
            if "Expression" in query:
                expressions[query["Expression"]] = alarm["Properties"]
    for name in ("RowsRejected", "PacketGap", "SchemaDrift", "ProcessingFailed"):
        assert name in METRIC_NAMES  # the runtime emits it under this very name
        expression = f'SELECT SUM({name}) FROM "TotesysProcessing"'
        assert expression in expressions, sorted(expressions)
        properties = expressions[expression]
        assert properties["Threshold"] == 1
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        (query,) = properties["Metrics"]
        assert query["ReturnData"] is True and query["Period"] == 300


def test_no_alarm_emails_is_allowed_but_warned(synth):
    _, stack = build_stack({"alarm_emails": []})
    Annotations.from_stack(stack).has_warning("*", Match.string_like_regexp("alarm_emails is empty"))
    assert json.dumps(synth(alarm_emails=[]).to_json()).count("AWS::SNS::Subscription") == 0
