"""The real handler, the real fixture rows, moto's server speaking the AWS HTTP API."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import date
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from runtime.errors import ConfigError, InvalidEventError
from runtime.handler import lambda_handler
from runtime.observability import logger
from runtime.star import ARROW_SCHEMAS
from runtime.tables import FACTS, OUTPUT_TABLES, SOURCE_TABLES
from sandbox.seed import fixture_lines, payment_versions, split, upload_packet

FACT_SOURCES = ("sales_order", "purchase_order", "payment")
DIMENSION_EVENT = [{"table": s.name, "id": 1} for s in SOURCE_TABLES if s.name not in FACT_SOURCES]
DIMENSION_EVENT.append({"table": "transaction", "id": 2})
DIMENSION_NAMES = [s.name for s in SOURCE_TABLES if s.name not in FACT_SOURCES]
KEY = re.compile(r"^(?P<t>[a-z_]+)/(?P=t)_packet_(?P<n>\d+)_processed_\d{8}T\d{6}\.\d{6}Z\.parquet$")


def upload_fixtures(aws, sales_packets=3):
    """Every fixture table: dimensions in one packet (transactions in two), sales orders
    in `sales_packets`, purchase orders in two, payments unpaid and then paid."""
    bucket = aws.names.ingestion_bucket
    for name in DIMENSION_NAMES:
        if name != "transaction":
            upload_packet(aws.s3, bucket, name, 1, fixture_lines(name))
    for i, lines in enumerate(split(fixture_lines("transaction"), 2), start=1):
        upload_packet(aws.s3, bucket, "transaction", i, lines)
    parts = split(fixture_lines("sales_order"), sales_packets)
    for i, lines in enumerate(parts, start=1):
        upload_packet(aws.s3, bucket, "sales_order", i, lines, gz=(i == 2))
    for i, lines in enumerate(split(fixture_lines("purchase_order"), 2), start=1):
        upload_packet(aws.s3, bucket, "purchase_order", i, lines)
    for i, lines in enumerate(payment_versions(fixture_lines("payment")), start=1):
        upload_packet(aws.s3, bucket, "payment", i, lines, gz=(i == 2))
    return len(parts)


def read_table(aws, table):
    return [pq.read_table(io.BytesIO(aws.read(k))) for k in aws.keys(f"{table}/")]


def fixture_rows(table):
    return [json.loads(line) for line in fixture_lines(table)]


def _day(text):
    return date.fromisoformat(text[:10])


@pytest.fixture(scope="module")
def expected():
    """What the fixture files say the warehouse must hold, computed from them alone."""
    sales, purchases, payments = (fixture_rows(t) for t in FACT_SOURCES)
    keys = {s.name: {r[s.key] for r in fixture_rows(s.name)} for s in SOURCE_TABLES if s.name not in FACT_SOURCES}
    # A paid payment was first ingested unpaid (last_updated = created_at): two versions.
    payment_versions_ = {(r["payment_id"], r["created_at"]) for r in payments}
    payment_versions_ |= {(r["payment_id"], r["last_updated"]) for r in payments}
    dates = set()
    for rows, own in ((sales, ("agreed_payment_date", "agreed_delivery_date")),
                      (purchases, ("agreed_payment_date", "agreed_delivery_date")), (payments, ("payment_date",))):
        for row in rows:
            dates |= {_day(row["created_at"]), _day(row["last_updated"]), *(date.fromisoformat(row[c]) for c in own)}
    counts = {
        "fact_sales_order": len({(r["sales_order_id"], r["last_updated"]) for r in sales}),
        "fact_purchase_order": len({(r["purchase_order_id"], r["last_updated"]) for r in purchases}),
        "fact_payment": len(payment_versions_),
        "dim_staff": len(keys["staff"]), "dim_location": len(keys["address"]),
        "dim_counterparty": len(keys["counterparty"]), "dim_currency": len(keys["currency"]),
        "dim_design": len(keys["design"]), "dim_transaction": len(keys["transaction"]),
        "dim_payment_type": len(keys["payment_type"]), "dim_date": len(dates),
    }
    return SimpleNamespace(counts=counts, dates=dates)


@pytest.fixture
def processed(aws):
    n = upload_fixtures(aws)
    first = DIMENSION_EVENT + [{"table": t, "id": 1} for t in FACT_SOURCES]
    results = [lambda_handler({"packets": first}, None)]
    results.append(lambda_handler({"packets": [{"table": t, "id": 2} for t in FACT_SOURCES]}, None))
    results += [lambda_handler({"packets": [{"table": "sales_order", "id": i}]}, None) for i in range(3, n + 1)]
    return aws, results


def test_all_fixture_tables_end_to_end(processed, expected):
    aws, results = processed
    assert all(r["status"] == "succeeded" for r in results)
    counts = {t: sum(x.num_rows for x in read_table(aws, t)) for t in OUTPUT_TABLES}
    # Each dim_date packet holds every date of its fact packet: the distinct ones count.
    counts["dim_date"] = len(set().union(*(set(x["date_id"].to_pylist()) for x in read_table(aws, "dim_date"))))
    assert counts == expected.counts
    assert (expected.counts["fact_payment"], expected.counts["dim_transaction"]) == (25484, 15836)
    assert all(r["rows_rejected"] == {} for r in results)


def test_every_foreign_key_of_every_fact_is_a_written_dimension_row(processed):
    aws, _ = processed
    written = {t: set().union(*(set(x.column(0).to_pylist()) for x in read_table(aws, t))) for t in OUTPUT_TABLES}
    for fact in FACTS:
        for table in read_table(aws, fact.name):
            for ref in fact.references:
                assert set(table[ref.column].to_pylist()) <= written[ref.dimension], (fact.name, ref)
            for column in fact.dates:
                assert set(table[column].to_pylist()) <= written["dim_date"], (fact.name, column)


def test_a_paid_payment_is_a_second_fact_row(processed):
    aws, _ = processed
    paid = {r["payment_id"] for r in fixture_rows("payment") if r["paid"]}
    rows = [r for t in read_table(aws, "fact_payment") for r in t.select(["payment_id", "paid"]).to_pylist()]
    versions = {}
    for row in rows:
        versions.setdefault(row["payment_id"], []).append(row["paid"])
    assert {pid for pid, v in versions.items() if v == [False, True]} == paid
    assert all(v == [False] for pid, v in versions.items() if pid not in paid)


def test_parquet_read_back_has_exactly_the_ddl_schema(processed):
    aws, _ = processed
    for table in OUTPUT_TABLES:
        for t in read_table(aws, table):
            assert t.schema.remove_metadata() == ARROW_SCHEMAS[table], table


def test_dim_date_holds_every_referenced_date_and_nothing_else(processed, expected):
    aws, _ = processed
    written = set()
    for t in read_table(aws, "dim_date"):
        written |= set(t["date_id"].to_pylist())
    assert written == expected.dates
    # Each fact packet, of any fact, comes with a dim_date packet (from the same source
    # packet) holding every date it refers to; one gapless numbering for all of them.
    dim_by_source = {aws.head(k)["Metadata"]["source"]: k for k in aws.keys("dim_date/")}
    fact_packets = 0
    for fact in FACTS:
        for key in aws.keys(f"{fact.name}/"):
            table = pq.read_table(io.BytesIO(aws.read(key)))
            referenced = set().union(*(set(table[c].to_pylist()) for c in fact.dates))
            dim = pq.read_table(io.BytesIO(aws.read(dim_by_source[aws.head(key)["Metadata"]["source"]])))
            assert referenced == set(dim["date_id"].to_pylist()), key
            fact_packets += 1
    assert sorted(int(KEY.match(k).group("n")) for k in aws.keys("dim_date/")) == list(range(1, fact_packets + 1))


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
        **{s.name: 1 for s in SOURCE_TABLES}, "sales_order": 3, "transaction": 2, "purchase_order": 2, "payment": 2,
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
    assert result["packets_processed"] == [] and len(result["already_processed"]) == len(DIMENSION_EVENT) + 1
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
    # One per output table and source packet with rows: six dimension packets (address
    # and department find nothing to re-emit yet), two transaction packets, and
    # sales_order:1's fact and dim_date.
    assert sum(line["message"] == "validation report" for line in lines) == 10
    emf = [json.loads(l) for l in capsys.readouterr().out.splitlines() if '"_aws"' in l]
    assert {m["table"] for m in emf} == {
        "fact_sales_order", "dim_date", "dim_staff", "dim_location", "dim_currency", "dim_design",
        "dim_counterparty", "dim_transaction", "dim_payment_type", *DIMENSION_NAMES, "sales_order",
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
