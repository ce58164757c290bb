"""What a warm container may remember between reads (docs/design.md#performance).

Commit records, state snapshots, the fact memory's manifests and segments and the
quarantine files are written once, with a conditional put, and never rewritten nor
deleted (docs/design.md#commit-steps, #keys): once read (or written), their bytes and
their LastModified stay true for as long as the bucket exists. Only those are
remembered here, by bucket and key, in a memory bounded by bytes (least recently used
first out). A key that does not exist is never remembered: it may be written next.
Pending marks and gap markers are deleted, and the SSM ids move: never remembered
across invocations (within one, see InvocationIds).

Also what is computed from such objects alone (a state snapshot parsed, the keys a
dimension holds given its state snapshots), keyed by the snapshots' keys.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from runtime import keys
from runtime.ports import PacketIds, ProcessedStore

# Prefixes of the processed bucket whose objects are immutable once written.
IMMUTABLE = (keys.COMMITS, keys.STATE, keys.HISTORY, keys.QUARANTINE)
DEFAULT_BUDGET = 64 * 1024 * 1024  # bytes a warm container keeps (Lambda has 1 GiB or more)
_OVERHEAD = 256  # what one entry costs besides its bytes (key, dict slot)


def immutable(key: str) -> bool:
    return key.startswith(IMMUTABLE)


class Lru:
    """A least-recently-used memory bounded by the bytes of what it holds."""

    def __init__(self, budget: int = DEFAULT_BUDGET, largest: int | None = None) -> None:
        self.budget = budget
        # A large object (a big packet's fact memory segment) is not kept alive after
        # its packet: it would raise the peak memory of the next one.
        self.largest = budget // 8 if largest is None else largest
        self.size = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        size += _OVERHEAD
        if size > self.largest:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= old[1]
        self._items[key] = (value, size)
        self.size += size
        while self.size > self.budget:
            _, (_, dropped) = self._items.popitem(last=False)
            self.size -= dropped

    def remembered(self, key: Hashable, compute: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        """The value under `key`, computed (and remembered) the first time."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value, size(value))
        return value

    def __len__(self) -> int:
        return len(self._items)


class RememberingStore:
    """A processed store that remembers what it read or wrote of its immutable
    objects (and their LastModified) in `memory`, shared by whoever shares it: the
    invocations of one warm container. Everything else goes to `store` every time."""

    def __init__(self, store: ProcessedStore, memory: Lru, name: str) -> None:
        self._store = store
        self.memory = memory
        self.name = name  # the bucket: keys are remembered per bucket

    def list_keys(self, prefix: str) -> list[str]:
        return self._store.list_keys(prefix)

    def read(self, key: str) -> bytes | None:
        if not immutable(key):
            return self._store.read(key)
        data = self.memory.get((self.name, "bytes", key))
        if data is None:
            data = self._store.read(key)
            if data is not None:
                self.memory.put((self.name, "bytes", key), data, len(data))
        return data

    def put_if_absent(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        written = self._store.put_if_absent(key, body, metadata)
        if immutable(key):  # it holds these bytes now (or held them already)
            self.memory.put((self.name, "bytes", key), body, len(body))
        return written

    def delete(self, key: str) -> None:
        self._store.delete(key)

    def last_modified(self, key: str) -> datetime:
        if not immutable(key):
            return self._store.last_modified(key)
        return self.memory.remembered((self.name, "modified", key), lambda: self._store.last_modified(key),
                                      lambda _: 64)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)  # what a test or an adapter adds (e.g. the bucket's name)


class InvocationIds:
    """The SSM packet ids as one invocation sees them: each read once, then what this
    invocation wrote. Never kept across invocations (an operator may move them in
    between). Within one the pipeline is their only writer: reserved concurrency 1
    (docs/design.md#ordering), and nothing else in the runtime writes an id (the
    operators' commands write commit records that the pipeline applies; a rebuild
    writes its own prefix). A write that fails forgets the id, so it is read again;
    the adapter still checks every write against the stored id."""

    def __init__(self, ids: PacketIds) -> None:
        self._ids = ids
        self._seen: dict[str, int] = {}

    def read_packet_id(self, name: str) -> int:
        if name not in self._seen:
            self._seen[name] = self._ids.read_packet_id(name)
        return self._seen[name]

    def write_packet_id(self, name: str, packet_id: int) -> None:
        self._seen.pop(name, None)
        self._ids.write_packet_id(name, packet_id)
        self._seen[name] = packet_id
