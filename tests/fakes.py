"""In-memory fakes of the ports, with a switch that kills the "process" after the
n-th write, the way a Lambda timeout or an out-of-memory kill would."""

from __future__ import annotations

import hashlib
import io

from runtime.errors import OutputConflictError, PacketIdNotFoundError
from runtime.packet_ids import check_next


class SimulatedKill(BaseException):
    """Not an Exception: nothing in the code under test may catch it."""


class Writes:
    """Counts writes to every fake that shares it; kills after the n-th one."""

    def __init__(self, kill_after: int | None = None) -> None:
        self.count = 0
        self.kill_after = kill_after
        self.log: list[str] = []

    def done(self, what: str) -> None:
        self.count += 1
        self.log.append(what)
        if self.kill_after is not None and self.count == self.kill_after:
            self.kill_after = None  # a retry runs in a fresh process
            raise SimulatedKill(f"killed after write {self.count}: {what}")


class MemoryBucket:
    def __init__(self, writes: Writes | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.writes = writes or Writes()

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def read(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def open(self, key: str):
        return io.BytesIO(self.objects[key])

    def put_if_absent(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        sha = hashlib.sha256(body).hexdigest()
        if key in self.objects:
            existing = hashlib.sha256(self.objects[key]).hexdigest()
            if existing != sha:
                raise OutputConflictError(key, existing, sha)
            return False
        self.objects[key] = body
        self.metadata[key] = dict(metadata)
        self.writes.done(f"put {key}")
        return True

    def put(self, key: str, body: bytes) -> None:
        """What the ingestion does (not a port method)."""
        self.objects[key] = body

    def delete(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            self.metadata.pop(key, None)
            self.writes.done(f"delete {key}")


class MemoryPacketIds:
    def __init__(self, names, writes: Writes | None = None) -> None:
        self.values = {name: 0 for name in names}
        self.writes = writes or Writes()

    def read_packet_id(self, name: str) -> int:
        if name not in self.values:
            raise PacketIdNotFoundError(f"SSM parameter {name} does not exist")
        return self.values[name]

    def write_packet_id(self, name: str, packet_id: int) -> None:
        if check_next(name, self.read_packet_id(name), packet_id):
            self.values[name] = packet_id
            self.writes.done(f"ssm {name}={packet_id}")
