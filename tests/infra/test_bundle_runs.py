"""The trimmed bundle, built for this machine, runs the real handler on its own.

The same bundler that builds the Lambda asset builds one for this machine's CPU and
Python; a fresh interpreter with no site-packages (`-S -s -P`, PYTHONPATH = the bundle
directory only) then runs `runtime.handler.lambda_handler` on the fixture packets
against moto's server. Every module it imported must come from the bundle or the
standard library, so a trim rule that removed something the function needs fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import boto3
import pytest

from cdk_app.bundling import Target, build_bundle
from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES
from sandbox.emulator import moto_server
from sandbox.seed import LocalStack, create_resources, fixture_lines, upload_packet

RUN_HANDLER = r"""
import json, sys
bundle, event, result_file = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
from runtime.handler import lambda_handler
result = lambda_handler(event, None)
loaded = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
with open(result_file, "w") as out:
    json.dump({"result": result, "modules": loaded, "path": sys.path}, out)
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bundle") / "asset"
    build_bundle(directory, target=Target.this_machine())
    return directory


def test_handler_runs_from_the_bundle_alone(bundle, tmp_path):
    names = LocalStack()
    event = {"packets": [{"table": source.name, "id": 1} for source in SOURCE_TABLES]}
    result_file = tmp_path / "result.json"
    with moto_server() as server:
        aws = server.env()
        session = boto3.session.Session(
            aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
            region_name=aws["AWS_DEFAULT_REGION"],
        )
        s3 = session.client("s3", endpoint_url=server.endpoint)
        ssm = session.client("ssm", endpoint_url=server.endpoint)
        create_resources(s3, ssm, names)
        for source in SOURCE_TABLES:
            upload_packet(s3, names.ingestion_bucket, source.name, 1, fixture_lines(source.name))

        env = {**aws, **names.env(), "LOG_LEVEL": "INFO", "PYTHONPATH": str(bundle), "PYTHONNOUSERSITE": "1"}
        process = subprocess.run(
            [sys.executable, "-S", "-s", "-P", "-c", RUN_HANDLER, str(bundle), json.dumps(event), str(result_file)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert process.returncode == 0, process.stderr[-4000:] + process.stdout[-4000:]

        written = {
            table: [o["Key"] for o in s3.list_objects_v2(Bucket=names.processed_bucket, Prefix=f"{table}/").get("Contents", [])]
            for table in OUTPUT_TABLES
        }  # fmt: skip

    outcome = json.loads(result_file.read_text())
    assert outcome["result"]["status"] == "succeeded"
    assert all(written[table] for table in OUTPUT_TABLES), written
    assert all(key.endswith(".parquet") for keys in written.values() for key in keys)
    assert all(outcome["result"]["rows_written"].get(table, 0) > 0 for table in OUTPUT_TABLES), outcome["result"]

    # Nothing came from the development environment: only the bundle and the stdlib.
    stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
    outside = {
        name: path for name, path in outcome["modules"].items()
        if path and not path.startswith(str(bundle)) and not path.startswith(stdlib)
    }  # fmt: skip
    assert outside == {}
    assert not [p for p in outcome["path"] if "site-packages" in p]
    for package in ("pandas", "pyarrow", "pyarrow.parquet", "pandera", "pycountry", "boto3"):
        assert outcome["modules"][package].startswith(str(bundle)), package
