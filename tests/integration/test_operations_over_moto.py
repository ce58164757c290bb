"""Dead-letter redrive against moto's SQS, the handler standing in for the Lambda invoke."""

import json

import boto3

from runtime.handler import lambda_handler
from runtime.operations import redrive
from sandbox.seed import fixture_lines, upload_packet


def test_redrive_from_a_real_queue_processes_the_parked_event_once(aws):
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="totesys-processing-dlq")["QueueUrl"]
    upload_packet(aws.s3, aws.names.ingestion_bucket, "currency", 1, fixture_lines("currency"))
    parked = {"packets": [{"table": "currency", "id": 1}]}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({
        "version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": parked, "responsePayload": {"errorType": "StorageUnavailableError"},
    }))

    def invoke(event):
        lambda_handler(event, None)

    assert redrive(sqs, queue_url, invoke) == [parked]
    assert aws.packet_id("consumed", "currency") == 1 and aws.keys("dim_currency/")
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert redrive(sqs, queue_url, invoke) == []  # run twice: nothing more happens
