"""A throwaway PostgreSQL 15 cluster for the session, a fresh database per test, and
`make run`'s fixture run, processed once per session by the real handler over moto.

No skip: without the PostgreSQL server binaries the fixture fails, naming what to install.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import boto3
import psycopg
import pytest

from runtime import handler
from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.tables import OUTPUT_TABLES, produced_parameter
from sandbox import run as make_run
from sandbox.emulator import moto_server
from sandbox.local_store import LocalDirectory
from sandbox.postgres import throwaway_cluster
from sandbox.seed import LocalStack, create_resources
from sandbox.warehouse import create_warehouse, load

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    """libpq conninfo of the cluster's maintenance database."""
    with throwaway_cluster() as conninfo:
        yield conninfo


@contextlib.contextmanager
def _database(postgres: str, template: str = "template0"):
    name = f"warehouse_{next(_databases)}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        # FILE_COPY: a few times quicker than WAL_LOG for a small database.
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY file_copy")
    conninfo = postgres.replace("dbname=postgres", f"dbname={name}")
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _template(postgres: str, name: str, fill) -> str:
    """A database made once per session, that tests get copies of."""
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    with psycopg.connect(postgres.replace("dbname=postgres", f"dbname={name}"), autocommit=True) as conn:
        fill(conn)
    return name


@pytest.fixture(scope="session")
def _schema_template(postgres):
    return _template(postgres, "warehouse_schema", create_warehouse)


@pytest.fixture
def warehouse(postgres, _schema_template):
    """An autocommit connection to a new database holding warehouse/schema.sql and the
    loader's bookkeeping (a copy of one run of create_warehouse)."""
    with _database(postgres, template=_schema_template) as conn:
        yield conn


@pytest.fixture(scope="session")
def _loaded_template(postgres, fixture_run):
    """The fixture run loaded once; tests that only read it get a copy."""
    def fill(conn):
        create_warehouse(conn)
        load(conn, fixture_run.store, fixture_run.produced_or_zero)

    return _template(postgres, "fixture_run_loaded", fill)


@pytest.fixture
def loaded_warehouse(postgres, _loaded_template):
    """A new database holding the whole fixture run, loaded (a copy of one load)."""
    with _database(postgres, template=_loaded_template) as conn:
        yield conn


@dataclass(frozen=True)
class FixtureRun:
    """The processed bucket after `make run`'s events, and the produced ids in SSM."""

    s3: S3Bucket  # the bucket itself, through the ProcessedStore port
    produced: dict[str, int]  # OUTPUT_TABLES' committed packet counts
    copy: Path  # every object of the bucket (`_` prefixes too), as a local directory

    @property
    def store(self) -> LocalDirectory:
        """The copy, through the same port (quicker than the emulator; do not damage)."""
        return LocalDirectory(self.copy)

    def produced_or_zero(self, table: str) -> int:
        """produced/{table}; 0 for a DDL table the runtime does not declare yet."""
        return self.produced.get(table, 0)

    def local_copy(self, where: Path) -> LocalDirectory:
        """A copy of the bucket a test may damage."""
        shutil.copytree(self.copy, where)
        return LocalDirectory(where)


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory):
    """The same packets and events as `make run` (sandbox/run.py), through
    lambda_handler, on a moto server of its own, so no other test's reset touches it."""
    names = LocalStack()
    with moto_server() as server:
        # The handler reads its settings from the environment: set only for the run.
        with pytest.MonkeyPatch.context() as env:
            for key, value in {**server.env(), **names.env(), "LOG_LEVEL": "WARNING"}.items():
                env.setenv(key, value)
            handler.reset()
            s3, ssm = boto3.client("s3"), boto3.client("ssm")
            create_resources(s3, ssm, names)
            with contextlib.redirect_stdout(io.StringIO()):  # make run's progress lines
                # make run's default split of sales_order into 4 packets.
                events = make_run._upload(s3, names, sales_packets=4, bad_rows=False)
            results = [handler.lambda_handler(event, None) for event in events]
            handler.reset()
        assert all(r["status"] == "succeeded" for r in results), results
        ids = SsmPacketIds(ssm)
        produced = {t: ids.read_packet_id(produced_parameter(names.ssm_prefix, t)) for t in OUTPUT_TABLES}
        store = S3Bucket(s3, names.processed_bucket)
        copy = tmp_path_factory.mktemp("processed") / "bucket"
        for key in store.list_keys(""):
            path = copy / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.read(key))
        yield FixtureRun(store, produced, copy)
