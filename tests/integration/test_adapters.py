"""The S3 and SSM adapters against moto's server: conditional puts, typed errors."""

from __future__ import annotations

import boto3
import pytest

from runtime.adapters.aws import CLIENT_CONFIG
from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.errors import (
    OutputConflictError,
    PacketIdNotFoundError,
    PacketIdOrderError,
    StorageUnavailableError,
)


@pytest.fixture
def bucket(aws):
    return S3Bucket(aws.s3, aws.names.processed_bucket)


@pytest.fixture
def ids(aws):
    return SsmPacketIds(aws.ssm)


def test_a_conditional_put_writes_once_and_accepts_the_same_bytes_again(aws, bucket):
    assert bucket.put_if_absent("t/k.parquet", b"abc", {"rows": "1"}) is True
    assert bucket.put_if_absent("t/k.parquet", b"abc", {"rows": "1"}) is False
    assert aws.head("t/k.parquet")["Metadata"]["sha256"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_other_bytes_under_an_existing_key_raise_file_exists_error(bucket):
    bucket.put_if_absent("t/k.parquet", b"abc", {})
    with pytest.raises(FileExistsError) as error:
        bucket.put_if_absent("t/k.parquet", b"abd", {})
    assert isinstance(error.value, OutputConflictError) and "t/k.parquet" in str(error.value)


def test_an_object_written_by_someone_else_is_compared_by_its_bytes(aws, bucket):
    aws.s3.put_object(Bucket=aws.names.processed_bucket, Key="t/x.json", Body=b"same")
    assert bucket.put_if_absent("t/x.json", b"same", {}) is False


def test_listing_paginates_and_reading_a_missing_key_gives_none(aws, bucket):
    for i in range(1005):
        aws.s3.put_object(Bucket=aws.names.processed_bucket, Key=f"p/{i:05d}", Body=b"")
    assert len(bucket.list_keys("p/")) == 1005
    assert bucket.read("p/nope") is None


def test_last_modified_comes_from_the_listing_or_a_head(aws, bucket):
    aws.s3.put_object(Bucket=aws.names.processed_bucket, Key="p/a", Body=b"x")
    head = aws.head("p/a")["LastModified"]
    assert bucket.list_keys("p/") == ["p/a"]
    assert bucket.last_modified("p/a") == head and head.tzinfo is not None
    assert S3Bucket(aws.s3, aws.names.processed_bucket).last_modified("p/a") == head  # not listed: a HEAD


def test_s3_that_cannot_be_reached_raises_connection_error():
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="eu-west-2", config=CLIENT_CONFIG)
    with pytest.raises(ConnectionError) as error:
        S3Bucket(client, "any-bucket").put_if_absent("k", b"x", {})
    assert isinstance(error.value, StorageUnavailableError)


def test_packet_ids_read_and_advance_one_step_at_a_time(aws, ids):
    name = f"{aws.names.ssm_prefix}/consumed/staff"
    assert ids.read_packet_id(name) == 0
    ids.write_packet_id(name, 1)
    ids.write_packet_id(name, 1)  # the same id again: a retry, a no-op
    assert ids.read_packet_id(name) == 1
    with pytest.raises(PacketIdOrderError):
        ids.write_packet_id(name, 3)
    with pytest.raises(PacketIdOrderError):
        ids.write_packet_id(name, 0)
    assert ids.read_packet_id(name) == 1


def test_a_parameter_that_does_not_exist_raises_key_error(ids):
    with pytest.raises(KeyError) as error:
        ids.read_packet_id("/nowhere/consumed/staff")
    assert isinstance(error.value, PacketIdNotFoundError) and "/nowhere/consumed/staff" in str(error.value)
    with pytest.raises(KeyError):
        ids.write_packet_id("/nowhere/consumed/staff", 1)


def test_parameter_store_that_cannot_be_reached_raises_connection_error():
    client = boto3.client("ssm", endpoint_url="http://127.0.0.1:9", region_name="eu-west-2", config=CLIENT_CONFIG)
    with pytest.raises(ConnectionError):
        SsmPacketIds(client).read_packet_id("/totesys/processing/consumed/staff")
