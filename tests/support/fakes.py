"""In-memory fakes of the ports, with a switch that kills the "process" after the
n-th write, the way a Lambda timeout or an out-of-memory kill would."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone

from runtime.errors import OutputConflictError
from sandbox import local_store as sandbox_ids


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
        self.modified: dict[str, datetime] = {}  # S3's LastModified
        self.writes = writes or Writes()

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def list_after(self, prefix: str, start_after: str, max_keys: int) -> list[str]:
        # S3 orders keys by their UTF-8 bytes.
        after = start_after.encode()
        return sorted((k for k in self.objects if k.startswith(prefix) and k.encode() > after),
                      key=str.encode)[:max_keys]

    def read(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def open(self, key: str):
        return io.BytesIO(self.objects[key])

    def last_modified(self, key: str) -> datetime:
        return self.modified[key]

    def put_if_absent(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        sha = hashlib.sha256(body).hexdigest()
        if key in self.objects:
            existing = hashlib.sha256(self.objects[key]).hexdigest()
            if existing != sha:
                raise OutputConflictError(key, existing, sha)
            return False
        self.objects[key] = body
        self.metadata[key] = dict(metadata)
        self.modified[key] = datetime.now(timezone.utc)
        self.writes.done(f"put {key}")
        return True

    def put(self, key: str, body: bytes, last_modified: datetime | None = None) -> None:
        """What the ingestion does (not a port method)."""
        self.objects[key] = body
        self.modified[key] = last_modified or datetime.now(timezone.utc)

    def delete(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            self.metadata.pop(key, None)
            self.modified.pop(key, None)
            self.writes.done(f"delete {key}")


class MemoryPacketIds(sandbox_ids.MemoryPacketIds):
    def __init__(self, names, writes: Writes | None = None) -> None:
        super().__init__(names)
        self.writes = writes or Writes()

    def write_packet_id(self, name: str, packet_id: int) -> bool:
        changed = super().write_packet_id(name, packet_id)
        if changed:
            self.writes.done(f"ssm {name}={packet_id}")
        return changed
