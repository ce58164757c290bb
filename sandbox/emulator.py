"""moto's server in a child process, on a free port of 127.0.0.1.

A real HTTP endpoint: boto3 talks to it exactly as to AWS (AWS_ENDPOINT_URL), and it
outlives a handler process that a test kills on purpose.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from collections.abc import Iterator

# Credentials and region for the emulator only; moto accepts any.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-2",
    "AWS_REGION": "eu-west-2",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self, process: subprocess.Popen, endpoint: str) -> None:
        self.process = process
        self.endpoint = endpoint

    def reset(self) -> None:
        """Forget every bucket, object and parameter."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        # The endpoint is our own http://127.0.0.1 URL, never user input.
        urllib.request.urlopen(request, timeout=10).close()  # nosec B310

    def env(self) -> dict[str, str]:
        return {**LOCAL_AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}


@contextmanager
def moto_server(timeout: float = 30.0, keep: bool = False, log: str | None = None) -> Iterator[MotoServer]:
    """moto's server for the block; with `keep`, it stays up after the block (its own
    session, so it outlives this process and a Ctrl-C) and `log` collects its output."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=output,
        stderr=output,
        env={**os.environ, **LOCAL_AWS_ENV},
        start_new_session=keep,
    )
    try:
        _wait_until_up(process, endpoint, timeout)
        yield MotoServer(process, endpoint)
    except BaseException:
        keep = False  # a failed run leaves nothing behind
        raise
    finally:
        if not keep:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_up(process: subprocess.Popen, endpoint: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()  # nosec B310 (own URL)
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"moto server did not answer on {endpoint} in {timeout}s") from None
            time.sleep(0.1)
