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


def test_facts_waiting_for_staff_are_replayed_when_it_comes_and_the_replay_command_works(aws, capsys):
    from runtime.operations import main

    for source in ("currency", "design", "address", "department", "counterparty"):
        upload_packet(aws.s3, aws.names.ingestion_bucket, source, 1, fixture_lines(source))
    upload_packet(aws.s3, aws.names.ingestion_bucket, "sales_order", 1, fixture_lines("sales_order")[:50])
    lambda_handler({"packets": [{"table": t, "id": 1} for t in
                                ("currency", "design", "address", "department", "counterparty", "sales_order")]}, None)
    assert aws.keys("fact_sales_order/") == []  # no staff yet: all 50 quarantined, waiting
    upload_packet(aws.s3, aws.names.ingestion_bucket, "staff", 1, fixture_lines("staff"))
    result = lambda_handler({"packets": [{"table": "staff", "id": 1}]}, None)
    assert result["packets_processed"] == ["staff:1", "replay:after_staff_packet_1"]
    assert result["rows_written"]["fact_sales_order"] == 50

    assert main(["replay"]) == 0  # an operator's replay: nothing left to write
    result = lambda_handler({"packets": []}, None)
    assert result["packets_processed"] == ["replay:1"] and "fact_sales_order" not in result["rows_written"]
    assert aws.packet_id("produced", "fact_sales_order") == 1
    capsys.readouterr()
    assert main(["status"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == []
