"""Shared fixtures: moto's server, and a clean account seeded as the stack would, per test."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import pytest

from runtime import handler
from sandbox.seed import LocalStack, create_resources


def _baseline_log_level() -> int:
    from runtime.observability import logger

    return logger.log_level


_BASELINE_LOG_LEVEL = _baseline_log_level()


@pytest.fixture(autouse=True)
def _log_level_restored():
    """The handler sets the shared logger's level from LOG_LEVEL at its cold start; a test
    that runs it with WARNING must not hide the INFO lines (validation reports) a later
    test in the same worker reads."""
    from runtime.observability import logger

    logger.setLevel(_BASELINE_LOG_LEVEL)  # a session fixture may have run the handler
    yield
    logger.setLevel(_BASELINE_LOG_LEVEL)


@pytest.fixture(scope="session")
def moto():
    from sandbox.emulator import moto_server

    with moto_server() as server:
        yield server


@dataclass
class Aws:
    s3: object
    ssm: object
    names: LocalStack

    def keys(self, prefix: str = "") -> list[str]:
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.names.processed_bucket, Prefix=prefix
        ):
            found.extend(o["Key"] for o in page.get("Contents", ()))
        return sorted(found)

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.names.processed_bucket, Key=key)["Body"].read()

    def head(self, key: str) -> dict:
        return self.s3.head_object(Bucket=self.names.processed_bucket, Key=key)

    def packet_id(self, kind: str, table: str) -> int:
        name = f"{self.names.ssm_prefix}/{kind}/{table}"
        return int(self.ssm.get_parameter(Name=name)["Parameter"]["Value"])


@pytest.fixture
def aws(moto, monkeypatch):
    moto.reset()
    names = LocalStack()
    for key, value in {**moto.env(), **names.env(), "LOG_LEVEL": "INFO"}.items():
        monkeypatch.setenv(key, value)
    handler.reset()
    s3, ssm = boto3.client("s3"), boto3.client("ssm")
    create_resources(s3, ssm, names)
    yield Aws(s3, ssm, names)
    handler.reset()
