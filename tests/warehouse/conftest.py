"""A throwaway PostgreSQL 15 cluster for the session, a fresh database per test.

No skip: without the PostgreSQL server binaries the fixture fails, naming what to install.
"""

from __future__ import annotations

import itertools

import psycopg
import pytest

from sandbox.postgres import throwaway_cluster
from sandbox.warehouse import create_warehouse

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    """libpq conninfo of the cluster's maintenance database."""
    with throwaway_cluster() as conninfo:
        yield conninfo


@pytest.fixture
def empty_database(postgres):
    """An autocommit connection to a new, empty database."""
    name = f"warehouse_{next(_databases)}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    conninfo = postgres.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def warehouse(empty_database):
    """A new database holding warehouse/schema.sql and the loader's bookkeeping."""
    create_warehouse(empty_database)
    return empty_database
