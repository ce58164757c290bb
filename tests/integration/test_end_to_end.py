"""The real handler, the real fixture rows, moto's server speaking the AWS HTTP API."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import date

import pyarrow.parquet as pq
import pytest

from runtime.errors import ConfigError, InvalidEventError
from runtime.handler import lambda_handler
from runtime.observability import logger
from runtime.star import ARROW_SCHEMAS
from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES
from sandbox.seed import fixture_lines, split, upload_packet

DIMENSION_EVENT = [{"table": s.name, "id": 1} for s in SOURCE_TABLES if s.name != "sales_order"]
DIMENSION_NAMES = [p["table"] for p in DIMENSION_EVENT]
KEY = re.compile(r"^(?P<t>[a-z_]+)/(?P=t)_packet_(?P<n>\d+)_processed_\d{8}T\d{6}\.\d{6}Z\.parquet$")


def upload_fixtures(aws, sales_packets=3):
    for source in SOURCE_TABLES:
        if source.name != "sales_order":
            upload_packet(aws.s3, aws.names.ingestion_bucket, source.name, 1, fixture_lines(source.name))
    parts = split(fixture_lines("sales_order"), sales_packets)
    for i, lines in enumerate(parts, start=1):
        upload_packet(aws.s3, aws.names.ingestion_bucket, "sales_order", i, lines, gz=(i == 2))
    return len(parts)


def read_table(aws, table):
    tables = [pq.read_table(io.BytesIO(aws.read(k))) for k in aws.keys(f"{table}/")]
    return tables


@pytest.fixture
def processed(aws):
    n = upload_fixtures(aws)
    results = [lambda_handler({"packets": DIMENSION_EVENT + [{"table": "sales_order", "id": 1}]}, None)]
    results += [lambda_handler({"packets": [{"table": "sales_order", "id": i}]}, None) for i in range(2, n + 1)]
    return aws, results


def test_all_fixture_tables_end_to_end(processed):
    aws, results = processed
    assert all(r["status"] == "succeeded" for r in results)
    counts = {t: sum(x.num_rows for x in read_table(aws, t)) for t in OUTPUT_TABLES}
    assert counts == {
        "fact_sales_order": 11175, "dim_staff": 20, "dim_location": 30, "dim_counterparty": 20,
        "dim_currency": 3, "dim_design": 472, "dim_date": counts["dim_date"],
    }
    assert sum(r["rows_rejected"].get("fact_sales_order", 0) for r in results) == 0


def test_parquet_read_back_has_exactly_the_ddl_schema(processed):
    aws, _ = processed
    for table in OUTPUT_TABLES:
        for t in read_table(aws, table):
            assert t.schema.remove_metadata() == ARROW_SCHEMAS[table], table


def test_dim_date_holds_every_referenced_date_and_nothing_else(processed):
    aws, _ = processed
    expected = set()
    for line in fixture_lines("sales_order"):
        row = json.loads(line)
        expected |= {date.fromisoformat(row["created_at"][:10]), date.fromisoformat(row["last_updated"][:10]),
                     date.fromisoformat(row["agreed_payment_date"]), date.fromisoformat(row["agreed_delivery_date"])}
    written = set()
    for t in read_table(aws, "dim_date"):
        written |= set(t["date_id"].to_pylist())
    assert written == expected
    # Each fact packet comes with a dim_date packet holding every date it refers to.
    facts, dates = read_table(aws, "fact_sales_order"), read_table(aws, "dim_date")
    for fact, dim in zip(facts, dates):
        referenced = set()
        for column in ("created_date", "last_updated_date", "agreed_payment_date", "agreed_delivery_date"):
            referenced |= set(fact[column].to_pylist())
        assert referenced == set(dim["date_id"].to_pylist())


def test_keys_metadata_and_packet_ids(processed):
    aws, _ = processed
    for table in OUTPUT_TABLES:
        keys = aws.keys(f"{table}/")
        numbers = sorted(int(KEY.match(k).group("n")) for k in keys)
        assert numbers == list(range(1, len(keys) + 1)), table
        assert aws.packet_id("produced", table) == len(keys)
        for key in keys:
            body, meta = aws.read(key), aws.head(key)["Metadata"]
            assert meta["sha256"] == hashlib.sha256(body).hexdigest()
            assert int(meta["rows"]) == pq.read_metadata(io.BytesIO(body)).num_rows
            assert re.fullmatch(r"[a-z_]+:\d+", meta["source"])
    assert {s.name: aws.packet_id("consumed", s.name) for s in SOURCE_TABLES} == {
        **{s.name: 1 for s in SOURCE_TABLES}, "sales_order": 3,
    }
    assert aws.keys("_pending/") == []
    # The key's timestamp is the latest last_updated behind the file, not the clock.
    [staff_key] = aws.keys("dim_staff/")
    assert staff_key == "dim_staff/dim_staff_packet_1_processed_20221103T142051.563000Z.parquet"


def test_the_same_event_again_writes_nothing_and_keeps_the_ids(processed):
    aws, _ = processed
    before = {k: aws.head(k)["ETag"] for k in aws.keys()}
    ids = {t: aws.packet_id("produced", t) for t in OUTPUT_TABLES}
    result = lambda_handler({"packets": DIMENSION_EVENT + [{"table": "sales_order", "id": 3}]}, None)
    assert result["packets_processed"] == [] and len(result["already_processed"]) == 7
    assert {k: aws.head(k)["ETag"] for k in aws.keys()} == before
    assert {t: aws.packet_id("produced", t) for t in OUTPUT_TABLES} == ids


def test_a_packet_of_more_than_1000_objects_is_read_whole(aws):
    lines = fixture_lines("design")
    for i in range(1050):
        aws.s3.put_object(
            Bucket=aws.names.ingestion_bucket,
            Key=f"design/design_packet_1_ingested_20241114T094109.839000Z_part{i:04d}.jsonl",
            Body=lines[i % len(lines)],
        )
    result = lambda_handler({"packets": [{"table": "design", "id": 1}]}, None)
    assert result["rows_written"] == {"dim_design": len(lines)}  # every design, latest version once


def test_a_bad_event_is_refused_before_anything_is_written(aws):
    with pytest.raises(InvalidEventError):
        lambda_handler({"packets": [{"table": "staff", "id": True}]}, None)
    assert aws.keys() == []


def test_a_missing_setting_fails_naming_it(aws, monkeypatch):
    from runtime import handler

    monkeypatch.delenv("PROCESSED_BUCKET")
    handler.reset()
    with pytest.raises(ConfigError, match="PROCESSED_BUCKET is not set"):
        lambda_handler({"packets": []}, None)


def test_the_summary_line_and_metrics_are_logged(aws, capsys):
    upload_fixtures(aws, sales_packets=1)
    log = io.StringIO()
    previous = logger.registered_handler.setStream(log)
    try:
        lambda_handler({"packets": DIMENSION_EVENT + [{"table": "sales_order", "id": 1}]}, None)
    finally:
        logger.registered_handler.setStream(previous)
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    [summary] = [line["summary"] for line in lines if line["message"] == "invocation summary"]
    assert summary["status"] == "succeeded" and summary["rows_written"]["fact_sales_order"] == 11175
    assert {"duration_ms", "timestamp"} <= set(summary)
    # Every log line carries the packet list as its correlation key.
    assert all(line["packets"] == summary["packets_named"] for line in lines)
    assert sum(line["message"] == "validation report" for line in lines) == 7
    emf = [json.loads(l) for l in capsys.readouterr().out.splitlines() if '"_aws"' in l]
    assert {m["table"] for m in emf} == {
        "fact_sales_order", "dim_date", "dim_staff", "dim_location", "dim_currency", "dim_design",
        "dim_counterparty", *DIMENSION_NAMES, "sales_order",
    }
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TotesysProcessing" for m in emf)
    [facts] = [m for m in emf if m["table"] == "fact_sales_order"]
    assert facts["RowsWritten"] == 11175


def test_a_failed_invocation_names_its_packet_in_the_summary_and_the_metric(aws, capsys):
    from runtime.errors import MissingPacketError

    upload_packet(aws.s3, aws.names.ingestion_bucket, "currency", 1, fixture_lines("currency"))
    log = io.StringIO()
    previous = logger.registered_handler.setStream(log)
    try:
        with pytest.raises(MissingPacketError):
            lambda_handler({"packets": [{"table": "currency", "id": 1}, {"table": "staff", "id": 1}]}, None)
    finally:
        logger.registered_handler.setStream(previous)
    [summary] = [json.loads(l)["summary"] for l in log.getvalue().splitlines() if "invocation summary" in l]
    assert summary["status"] == "failed" and summary["failed_packet"] == "staff:1"
    assert summary["packets_processed"] == ["currency:1"] and summary["error"].startswith("MissingPacketError")
    emf = [json.loads(l) for l in capsys.readouterr().out.splitlines() if '"_aws"' in l]
    assert [m["table"] for m in emf if "ProcessingFailed" in m] == ["staff"]
