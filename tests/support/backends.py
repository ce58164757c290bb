"""Where a kill sweep's store lives and how its kill lands (the Backend of kill_sweep.py).

- MemoryBackend: the pipeline over the in-memory fakes (fakes.py); the kill is a
  SimulatedKill raised by the fake right after the n-th write. Its worlds can be copied,
  so a kill point starts from the undisturbed run's copy instead of replaying the steps.
- MotoBackend: the real S3 and SSM adapters over HTTP to moto's server (the conditional
  puts' 412 are moto's); the kill is an `after-call` hook on the pipeline's own clients
  raising right after the n-th write answered 2xx (PutObject, DeleteObject, PutParameter).
- ProcessBackend: the handler in a process of its own per invocation, over moto's
  server (tests/reliability/procs.py); the kill is that process calling os._exit(137)
  right after its n-th write: no exception handler, no `finally`, no flush.

A write is described the same way in the first two ("put KEY", "delete KEY",
"ssm NAME=VALUE"); the process reports its own ("s3.PutObject TARGET").
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import boto3

from runtime import keys
from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.events import parse_event
from runtime.observability import Metrics
from runtime.operations import late
from runtime.pipeline import Pipeline
from sandbox.seed import LocalStack, create_resources
from tests.support.fakes import SimulatedKill
from tests.support.harness import Harness, encode_lines, store_invariants
from tests.support.kill_sweep import Outcome, state_diff


def ingestion_key(table: str, packet_id: int) -> str:
    return f"{keys.packet_prefix(table, packet_id)}ingested_20241114T153409.845000Z.jsonl"


def event(packets: Sequence[str]) -> dict:
    """The Lambda event naming `packets` ("table:id" strings)."""
    return {"packets": [{"table": p.split(":")[0], "id": int(p.split(":")[1])} for p in packets]}


class MemoryBackend:
    """The world is a Harness: both buckets and the ids in memory, one fresh Pipeline per invoke."""

    def fresh(self) -> Harness:
        return Harness()

    def fork(self, world: Harness) -> Harness:
        return world.fork()

    def upload(self, world: Harness, table: str, packet_id: int, rows: list) -> None:
        world.upload(table, packet_id, rows)

    def late(self, world: Harness, table: str, packet_id: int) -> None:
        late(world.processed, world.ingestion, table, packet_id)

    def invoke(self, world: Harness, packets: Sequence[str], kill_after: int | None = None) -> Outcome:
        start = world.writes.count
        world.writes.kill_after = None if kill_after is None else start + kill_after
        try:
            world.invoke(*packets)
        except SimulatedKill:
            return Outcome(killed=True, writes=tuple(world.writes.log[start:]))
        return Outcome(writes=tuple(world.writes.log[start:]))

    def end_state(self, world: Harness) -> tuple[dict, dict]:
        return dict(world.processed.objects), dict(world.ids.values)

    def check(self, state: tuple[dict, dict]) -> None:
        store_invariants(*state)

    diff = staticmethod(state_diff)


_WRITES = {"PutObject", "DeleteObject", "PutParameter"}


class _KillSwitch:
    """Counts the writes of the clients it is attached to; raises after the n-th."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.kill_after: int | None = None

    def attach(self, client) -> None:
        client.meta.events.register("before-parameter-build", self._before)
        client.meta.events.register("after-call", self._after)

    def _before(self, params, model, context, **kwargs) -> None:
        if model.name == "PutParameter":
            context["kill_sweep_write"] = f"ssm {params['Name']}={params['Value']}"
        elif model.name in _WRITES:
            context["kill_sweep_write"] = f"{model.name[:-6].lower()} {params['Key']}"

    def _after(self, http_response, model, context, **kwargs) -> None:
        if model.name in _WRITES and 200 <= http_response.status_code < 300:
            self.log.append(context["kill_sweep_write"])
            if len(self.log) == self.kill_after:
                self.kill_after = None
                raise SimulatedKill(f"killed after write {len(self.log)}: {self.log[-1]}")


class MotoBackend:
    """moto's server (the session's), reset for every world; the test's `aws` clients seed
    and read it, the pipeline has clients of its own that carry the kill switch."""

    def __init__(self, moto, s3, ssm, names: LocalStack | None = None) -> None:
        self.moto, self.s3, self.ssm = moto, s3, ssm
        self.names = names or LocalStack()
        self.switch = _KillSwitch()
        self._clients = boto3.client("s3"), boto3.client("ssm")
        for client in self._clients:
            self.switch.attach(client)

    def fresh(self) -> MotoBackend:
        self.moto.reset()
        create_resources(self.s3, self.ssm, self.names)
        return self

    def fork(self, world) -> None:
        return None  # the server's store cannot be copied: the driver replays the steps

    def upload(self, world, table: str, packet_id: int, rows: list) -> None:
        self.s3.put_object(Bucket=self.names.ingestion_bucket, Key=ingestion_key(table, packet_id),
                           Body=encode_lines(rows))

    def late(self, world, table: str, packet_id: int) -> None:
        names = self.names
        late(S3Bucket(self.s3, names.processed_bucket), S3Bucket(self.s3, names.ingestion_bucket), table, packet_id)

    def invoke(self, world, packets: Sequence[str], kill_after: int | None = None) -> Outcome:
        s3, ssm = self._clients
        pipeline = Pipeline(
            S3Bucket(s3, self.names.ingestion_bucket),
            S3Bucket(s3, self.names.processed_bucket),
            SsmPacketIds(ssm),
            self.names.ssm_prefix,
            Metrics(stream=io.StringIO()),
        )
        start = len(self.switch.log)
        self.switch.kill_after = None if kill_after is None else start + kill_after
        try:
            pipeline.run(parse_event(event(packets)))
        except SimulatedKill:
            return Outcome(killed=True, writes=tuple(self.switch.log[start:]))
        finally:
            self.switch.kill_after = None
        return Outcome(writes=tuple(self.switch.log[start:]))

    def end_state(self, world) -> tuple[dict, dict]:
        bucket = self.names.processed_bucket
        objects = {
            item["Key"]: self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", ())
        }
        ids = {p["Name"]: p["Value"] for page in self.ssm.get_paginator("get_parameters_by_path").paginate(
            Path=self.names.ssm_prefix, Recursive=True) for p in page["Parameters"]}
        return objects, ids

    def check(self, state: tuple[dict, dict]) -> None:
        store_invariants(*state, prefix=self.names.ssm_prefix)

    diff = staticmethod(state_diff)


class ProcessBackend:
    """Each invocation a process of its own: `run` takes one procs.py command and answers
    with its exit code and writes. `stack` is moto's server as the stack seeds it (its
    fresh(packets), s3, end_state()); an end state keeps every object's user metadata."""

    def __init__(self, stack, run: Callable[[dict], dict], killed_exit: int, names: LocalStack | None = None) -> None:
        self.stack, self.run, self.killed_exit = stack, run, killed_exit
        self.names = names or LocalStack()

    def fresh(self):
        self.stack.fresh(packets={})
        return self.stack

    def fork(self, world) -> None:
        return None

    def upload(self, world, table: str, packet_id: int, rows: list) -> None:
        self.stack.s3.put_object(Bucket=self.names.ingestion_bucket, Key=ingestion_key(table, packet_id),
                                 Body=encode_lines(rows))

    def late(self, world, table: str, packet_id: int) -> None:
        raise NotImplementedError("the process sweep's scenario has no late request")

    def invoke(self, world, packets: Sequence[str], kill_after: int | None = None) -> Outcome:
        command = {"invoke": event(packets)} | ({} if kill_after is None else {"kill_after": kill_after})
        answer = self.run(command)
        code = answer["exit"]
        error = None if code in (0, self.killed_exit) else f"exit {code}: {answer.get('error')}"
        return Outcome(killed=code == self.killed_exit, writes=tuple(answer.get("writes", ())), error=error)

    def end_state(self, world):
        return self.stack.end_state()

    def check(self, state) -> None:
        store_invariants({key: body for key, (body, _) in state.objects.items()}, state.ids,
                         prefix=self.names.ssm_prefix)

    def diff(self, state, expected) -> str:
        return state.diff(expected)
