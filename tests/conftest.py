"""Shared fixtures: moto's server for integration tests, in-memory ports for unit tests."""

from __future__ import annotations


import pytest



@pytest.fixture(scope="session")
def moto():
    from sandbox.emulator import moto_server

    with moto_server() as server:
        yield server
