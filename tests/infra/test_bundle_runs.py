"""The asset, as it will be unzipped on Lambda, runs the real handler with the runtime's Python.

The bundler builds the asset for this machine's CPU (same lock, trims and bytecode as the
arm64 one: arm64 libraries cannot load here), zipped as the CDK CLI zips it (every entry
stamped 1980-01-01) and unzipped read-only. Python 3.12, with no site-packages (`-S -s
-P`, PYTHONPATH = the unzipped folder only), then runs `runtime.handler.lambda_handler`
against moto's server. Every module it loaded must come from the asset or the standard
library (a trim rule that removed something needed fails here), and no module of the
asset may have been compiled from source: the bytecode must survive the zip's
timestamps (docs/design.md#performance).
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES
from sandbox.cold_start import built_asset, run_cold, unzip_read_only, without_bytecode, zip_like_cdk
from sandbox.emulator import moto_server
from sandbox.seed import LocalStack, create_resources, fixture_lines, upload_packet


@pytest.fixture(scope="module")
def asset() -> tuple[Path, str]:
    return built_asset()


@pytest.fixture()
def aws():
    """moto's server with the stack's resources and packet 1 of every source table."""
    names = LocalStack()
    with moto_server() as server:
        env = server.env()
        session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                        region_name=env["AWS_DEFAULT_REGION"])  # fmt: skip
        s3 = session.client("s3", endpoint_url=server.endpoint)
        ssm = session.client("ssm", endpoint_url=server.endpoint)
        create_resources(s3, ssm, names)
        for source in SOURCE_TABLES:
            upload_packet(s3, names.ingestion_bucket, source.name, 1, fixture_lines(source.name))
        yield {"PATH": os.environ.get("PATH", ""), **env, **names.env(), "LOG_LEVEL": "INFO"}, s3, names


def test_handler_runs_from_the_unzipped_asset_on_its_bytecode(asset, aws, tmp_path):
    folder, python = asset
    env, s3, names = aws
    unzipped = unzip_read_only(zip_like_cdk(folder, tmp_path / "asset.zip"), tmp_path / "task")
    event = {"packets": [{"table": source.name, "id": 1} for source in SOURCE_TABLES]}

    run = run_cold(python, unzipped, env, event)

    assert run.python.startswith("3.12.")
    assert run.status == "succeeded"
    assert run.compiled_from_source == ()  # every asset module came from its .pyc
    assert run.outside == ()  # only the asset and the standard library were imported
    assert all(run.rows_written.get(table, 0) > 0 for table in OUTPUT_TABLES), run.rows_written
    for table in OUTPUT_TABLES:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=names.processed_bucket, Prefix=f"{table}/")["Contents"]]
        assert keys and all(key.endswith(".parquet") for key in keys), table


def test_without_bytecode_the_same_asset_compiles_every_module_it_imports(asset, aws, tmp_path):
    # The detector above is real: the same run without .pyc compiles the imports from source.
    folder, python = asset
    env, _, _ = aws
    stripped = without_bytecode(folder, tmp_path / "stripped")
    unzipped = unzip_read_only(zip_like_cdk(stripped, tmp_path / "asset.zip"), tmp_path / "task")

    run = run_cold(python, unzipped, env, {"packets": [{"table": "currency", "id": 1}]})

    assert run.status == "succeeded"
    assert len(run.compiled_from_source) > 500
    assert str(unzipped / "runtime" / "handler.py") in run.compiled_from_source
