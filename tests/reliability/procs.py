"""The handler in processes of its own, for the tests that need real processes.

`python -m tests.reliability.procs` is a zygote: it imports the handler and everything
it needs once, the way a Lambda's INIT phase does before the first invocation, then
for each JSON command on stdin forks a child that runs it and exits, and answers one
JSON line on stdout. The zygote itself never invokes the handler, so every child starts
as a cold container would: no settings, no clients, nothing cached by an earlier
invocation. (`--once COMMAND` runs one command in the process itself instead: a fully
fresh interpreter, for comparison.)

Commands:
  {"invoke": EVENT, "kill_after": N}  one invocation; with kill_after, the child calls
      os._exit(137) right after the N-th successful write (S3 PutObject/DeleteObject or
      SSM PutParameter with a 2xx answer, seen by an `after-call` hook), as a Lambda
      killed by a timeout or out of memory would die: no finally, no flush.
  {"soak": [EVENT, ...], "snapshot_at": K}  every event through lambda_handler in this
      one process, as a warm container sees them; reports each outcome, the resident
      set size after each event, and a digest of the end state after event K.
  Any command may carry "env": settings for that child (another bucket, say).
Answers: {"exit": code, "writes": [...], "error": "Type: message" | null, ...}.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KILLED = 137
_WRITES = frozenset({"s3.PutObject", "s3.DeleteObject", "ssm.PutParameter"})


# -- in the child --------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _invoke(command: dict, answer) -> int:
    from runtime import handler
    from tests.reliability.faults import Injector

    s3, ssm = _clients(handler)
    injector = Injector().attach(s3, ssm)
    writes: list[str] = []
    kill_after = command.get("kill_after")

    def after_write(http_response, **kwargs):
        call = injector.calls[-1]
        if call.op in _WRITES and 200 <= http_response.status_code < 300:
            writes.append(f"{call.op} {call.target}")
            if kill_after is not None and len(writes) == kill_after:
                answer({"exit": KILLED, "writes": writes, "error": None})
                os._exit(KILLED)

    for client in (s3, ssm):
        client.meta.events.register("after-call", after_write)
    try:
        result = handler.lambda_handler(command["invoke"], None)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        answer({"exit": 1, "writes": writes, "error": f"{type(exc).__name__}: {exc}",
                "outcome": {"status": "failed", "error": type(exc).__name__}})
        return 1
    answer({"exit": 0, "writes": writes, "error": None, "outcome": {
        "status": result["status"], "processed": result["packets_processed"],
        "already": sorted(result["already_processed"])}})
    return 0


def outcome(invoke) -> dict:
    """What one invocation did, comparable between runs."""
    try:
        result = invoke()
    except Exception as exc:  # noqa: BLE001 - a failed invocation is an outcome
        return {"status": "failed", "error": type(exc).__name__}
    return {"status": result["status"], "processed": result["packets_processed"],
            "already": sorted(result["already_processed"])}


def digest() -> dict:
    """The end state as hashes (workload.state_digest), read with clients of its own."""
    import boto3

    from tests.reliability.workload import state_digest

    env = os.environ
    return state_digest(boto3.client("s3"), boto3.client("ssm"), env["PROCESSED_BUCKET"], env["SSM_PREFIX"])


def _soak(command: dict, answer) -> int:
    from runtime import handler

    outcomes, rss, snapshot = [], [], None
    started = time.perf_counter()
    for n, event in enumerate(command["soak"], start=1):
        outcomes.append(outcome(lambda: handler.lambda_handler(event, None)))
        rss.append(rss_bytes())
        if n == command.get("snapshot_at"):
            snapshot = digest()
    answer({"exit": 0, "outcomes": outcomes, "rss": rss, "seconds": time.perf_counter() - started,
            "snapshot": snapshot})
    return 0


def _clients(handler):
    _, ingestion, _, packet_ids = handler._application()
    return ingestion._s3, packet_ids._ssm


def _run(command: dict, answer) -> int:
    os.environ.update(command.get("env", {}))
    if "soak" in command:
        return _soak(command, answer)
    return _invoke(command, answer)


def _child(command: dict, fd: int) -> None:
    """In a forked child: run the command, write the answer to `fd`, exit."""
    log = os.open(command.get("log", os.devnull), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)

    def answer(payload):
        os.write(fd, json.dumps(payload).encode())

    code = 2
    try:
        code = _run(command, answer)
    finally:
        os._exit(code)


def _preload() -> None:
    for module in ("boto3", "runtime.handler", "runtime.pipeline", "runtime.transform", "tests.reliability.faults"):
        importlib.import_module(module)


def zygote() -> None:
    _preload()
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        command = json.loads(line)
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child(command, write)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 1 << 16):
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        answer = json.loads(b"".join(chunks) or b"{}")
        answer["exit"] = os.waitstatus_to_exitcode(status)
        answer["pid"] = pid
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def once(command: dict) -> None:
    """Run one command in this very process (a fresh interpreter) and print the answer."""
    def answer(payload):
        sys.__stdout__.write("\n" + json.dumps(payload) + "\n")
        sys.__stdout__.flush()

    code = _run(command, answer)
    sys.__stdout__.flush()
    os._exit(code)


# -- in the parent -------------------------------------------------------------------


class Zygote:
    """The parent's handle on a zygote process."""

    def __init__(self, env: dict[str, str], stderr_path: Path) -> None:
        self._stderr = open(stderr_path, "ab")
        self.env = {**os.environ, **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.procs"], cwd=ROOT, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )
        ready = self.process.stdout.readline()
        if not ready:
            raise RuntimeError(f"the zygote exited with {self.process.wait()}; see {stderr_path}")

    def run(self, command: dict) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died ({self.process.poll()})")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


def run_once(command: dict, env: dict[str, str]) -> dict:
    """One command in a freshly started interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.procs", "--once", json.dumps(command)],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    answer["exit"] = done.returncode
    return answer


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--once":
        once(json.loads(sys.argv[2]))
    else:
        zygote()
