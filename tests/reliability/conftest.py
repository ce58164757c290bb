"""Fixtures for the reliability suite: moto's server per test, the handler's own clients."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.retries.standard import ExponentialBackoff

from runtime import handler
from tests.reliability import report
from tests.reliability.workload import NAMES, end_state, seed


class Stack:
    """moto's server, clean and seeded as the stack would be, and the handler's env."""

    def __init__(self, moto) -> None:
        self.moto = moto
        self.s3 = boto3.client("s3")
        self.ssm = boto3.client("ssm")

    def fresh(self, packets=None) -> None:
        """Forget everything, create what the stack creates, upload the packets, and
        drop the handler's cached clients (the next invocation is a cold start)."""
        self.moto.reset()
        seed(self.s3, self.ssm, packets)
        handler.reset()

    def end_state(self):
        return end_state(self.s3, self.ssm)


def handler_clients():
    """The S3 and SSM clients the handler built at its cold start (and keeps)."""
    _, ingestion, _, packet_ids = handler._application()
    return ingestion._s3, packet_ids._ssm


def handler_env(moto) -> dict[str, str]:
    """The Lambda environment: moto's endpoint and credentials, the stack's names."""
    return {**moto.env(), **NAMES.env(), "LOG_LEVEL": "WARNING"}


@pytest.fixture
def stack(moto, monkeypatch):
    for key, value in handler_env(moto).items():
        monkeypatch.setenv(key, value)
    stack = Stack(moto)
    stack.fresh(packets={})  # buckets and parameters only: each test uploads its packets
    yield stack
    handler.reset()


@pytest.fixture(scope="module")
def module_stack(moto):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in handler_env(moto).items():
            mp.setenv(key, value)
        stack = Stack(moto)
        stack.fresh()
        yield stack
        handler.reset()


@pytest.fixture
def no_backoff(monkeypatch):
    """The SDK's retries without their sleeps: ExponentialBackoff.delay_amount (botocore's
    standard retry mode) is patched to 0, so the retry loop still runs, attempt for
    attempt, with `time.sleep(0)` between attempts."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def pytest_sessionfinish(session):
    """A pytest-xdist worker hands its figures to the controller, which prints them."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["reliability_figures"] = json.dumps(report.dump())


def pytest_testnodedown(node, error):
    figures = getattr(node, "workeroutput", {}).get("reliability_figures")
    if figures:
        report.merge(json.loads(figures))


def pytest_terminal_summary(terminalreporter):
    lines = report.lines()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
