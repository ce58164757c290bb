"""What the stack hands to the ingestion side and to whoever operates it."""

from __future__ import annotations

from aws_cdk.assertions import Match


def test_function_dead_letter_queue_and_topic_are_outputs(template):
    template.has_output("FunctionArn", {"Value": {"Fn::GetAtt": [Match.any_value(), "Arn"]}})
    template.has_output("FunctionName", {"Value": {"Ref": Match.any_value()}})
    template.has_output("DeadLetterQueueUrl", {"Value": {"Ref": Match.any_value()}})
    template.has_output("AlarmTopicArn", {"Value": {"Ref": Match.any_value()}})
    template.has_output("IngestionBucketName", {"Value": Match.any_value()})
    template.has_output("ProcessedBucketName", {"Value": Match.any_value()})


def test_output_references_point_at_the_right_resources(template_json):
    resources = template_json["Resources"]
    outputs = template_json["Outputs"]
    assert resources[outputs["FunctionArn"]["Value"]["Fn::GetAtt"][0]]["Type"] == "AWS::Lambda::Function"
    assert resources[outputs["DeadLetterQueueUrl"]["Value"]["Ref"]]["Type"] == "AWS::SQS::Queue"
    assert resources[outputs["AlarmTopicArn"]["Value"]["Ref"]]["Type"] == "AWS::SNS::Topic"
