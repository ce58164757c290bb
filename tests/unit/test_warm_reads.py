"""A warm container remembers immutable objects, never what moves
(docs/design.md#performance, #commit-steps): fewer reads per event, never a stale value."""

from __future__ import annotations

import io
from collections import Counter

import pyarrow as pa
import pytest

from runtime import committed, keys
from runtime.events import parse_event
from runtime.observability import Metrics
from runtime.pipeline import Pipeline
from runtime.remembered import Lru, RememberingStore
from tests.support.fakes import MemoryBucket
from tests.support.harness import PREFIX, Harness, sales_order, staff

FACT_EVENTS = 6


class CountingBucket(MemoryBucket):
    """Counts every read and LastModified look, by the key's first path part."""

    def __init__(self, writes=None) -> None:
        super().__init__(writes)
        self.reads: Counter = Counter()

    def read(self, key: str) -> bytes | None:
        self.reads[key.split("/")[0]] += 1
        return super().read(key)

    def last_modified(self, key: str):
        self.reads["last_modified " + key.split("/")[0]] += 1
        return super().last_modified(key)


class Container:
    """One warm container: one memory shared by its invocations, as the handler's."""

    def __init__(self, h: Harness, memory: Lru | None) -> None:
        self.h, self.memory = h, memory

    def invoke(self, *packets: str):
        event = parse_event({"packets": [{"table": p.split(":")[0], "id": int(p.split(":")[1])} for p in packets]})
        memory = self.memory if self.memory is not None else Lru()  # None: a cold container each time
        store = RememberingStore(self.h.processed, memory, "processed")
        return Pipeline(self.h.ingestion, store, self.h.ids, PREFIX, Metrics(stream=io.StringIO())).run(event)


def harness() -> Harness:
    h = Harness()
    h.processed = CountingBucket(h.writes)
    return h


def fact_sequence(memory: Lru | None, before_facts=lambda: None) -> tuple[Harness, Counter]:
    """Dimensions, then FACT_EVENTS fact packets, one event each: the reads of the fact events."""
    h = harness()
    box = Container(h, memory)
    box.invoke(*h.upload_dimensions())
    for k in range(1, FACT_EVENTS + 1):
        h.upload("sales_order", k, [sales_order(k, updated=f"2023-01-0{k}T00:00:00")])
    h.processed.reads.clear()
    before_facts()
    for k in range(1, FACT_EVENTS + 1):
        box.invoke(f"sales_order:{k}")
    return h, h.processed.reads


def test_a_warm_sequence_reads_no_immutable_object_twice():
    """Warm: every commit record, state snapshot and fact memory object the fact events
    need was read or written earlier by the same container, so none is read again;
    only what may not exist yet (a packet's own commit record, step 1) is looked up."""
    h, warm = fact_sequence(Lru())
    _, cold = fact_sequence(None)
    assert h.consumed("sales_order") == FACT_EVENTS
    # Step 1 looks for the packet's own commit record: absent, so read every time.
    assert warm[keys.COMMITS.rstrip("/")] == FACT_EVENTS
    assert warm[keys.STATE.rstrip("/")] == 0 and warm[keys.HISTORY.rstrip("/")] == 0
    immutable = sum(warm[p.rstrip("/")] for p in (keys.COMMITS, keys.STATE, keys.HISTORY, keys.QUARANTINE))
    assert immutable <= 1 * FACT_EVENTS
    # A cold container per event reads each dimension's commit record and snapshot again.
    cold_immutable = sum(cold[p.rstrip("/")] for p in (keys.COMMITS, keys.STATE, keys.HISTORY, keys.QUARANTINE))
    assert cold_immutable >= 10 * FACT_EVENTS


def test_the_keys_a_dimension_holds_are_computed_once_per_state(monkeypatch):
    """runtime.transform.emitted_keys builds and validates a whole dimension: once per
    (dimension, its snapshots), not per fact packet."""
    calls: Counter = Counter()
    real = committed.emitted_keys

    def counted(out, states):
        calls[out.name] += 1
        return real(out, states)

    monkeypatch.setattr(committed, "emitted_keys", counted)
    fact_sequence(Lru(), calls.clear)
    assert set(calls) == {"dim_staff", "dim_counterparty", "dim_currency", "dim_design", "dim_location"}
    assert set(calls.values()) == {1}


def test_a_new_dimension_state_is_seen_by_the_next_fact_packet():
    """Remembered values are never stale: a fact for staff 21 waits; staff 21 arrives
    (a new snapshot, a new commit record, a replay); the next fact for staff 21 is
    written at once, the replay's commit record is seen (its file not offered again)."""
    h = harness()
    box = Container(h, Lru())
    box.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1, staff_id=21)])
    box.invoke("sales_order:1")
    assert h.rows("fact_sales_order") == [] and h.quarantine("fact_sales_order", "sales_order:1")
    h.upload("staff", 2, [staff(21, 1, "Ann", "Lee", updated="2023-03-01T00:00:00")])
    summary = box.invoke("staff:2")
    assert [o.packet for o in summary.outcomes] == ["staff:2", "replay:after_staff_packet_2"]
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1]
    # Staff 22 arrives in the same invocation, before the facts (dependency order).
    h.upload("sales_order", 2, [sales_order(2, updated="2023-03-02T00:00:00", staff_id=21),
                                sales_order(3, updated="2023-03-02T00:00:00", staff_id=22)])
    h.upload("staff", 3, [staff(22, 1, "Bo", "Ng", updated="2023-03-01T00:00:00")])
    summary = box.invoke("sales_order:2", "staff:3")
    assert [r["sales_order_id"] for r in h.rows("fact_sales_order")] == [1, 2, 3]
    assert h.quarantine("fact_sales_order", "sales_order:2") == []
    # staff:3 emits a key nothing waits for: the replayed file is taken, no replay again.
    assert [o.packet for o in summary.outcomes] == ["staff:3", "sales_order:2"]
    h.check_invariants()


def test_only_immutable_objects_that_exist_are_remembered():
    bucket = CountingBucket()
    store = RememberingStore(bucket, Lru(), "b")
    record = keys.commit_key("staff", 1)
    assert store.read(record) is None
    bucket.put(record, b"{}")
    assert store.read(record) == b"{}"  # a missing key is looked up again
    assert store.read(record) == b"{}" and bucket.reads["_commits"] == 2
    pending = keys.pending_key(1)
    store.put_if_absent(pending, b"a", {})
    bucket.objects[pending] = b"b"  # not immutable: deleted and written again
    assert store.read(pending) == b"b"
    store.put_if_absent(keys.state_key("staff", 2), b"snapshot", {})
    assert store.read(keys.state_key("staff", 2)) == b"snapshot" and bucket.reads["_state"] == 0
    # Another bucket's object of the same key is another object.
    other = RememberingStore(CountingBucket(), store.memory, "other")
    assert other.read(record) is None


def test_the_memory_is_bounded_by_bytes_least_recently_used_first_out():
    memory = Lru(budget=3000, largest=1500)
    for n in range(5):
        memory.put(n, b"x" * 1000, 1000)
        memory.get(0)  # kept in use
    assert memory.size <= 3000 and len(memory) == 2
    assert memory.get(0) is not None and memory.get(4) is not None and memory.get(1) is None
    memory.put("large", b"x", 2000)  # over the largest entry kept
    assert memory.get("large") is None and memory.get(0) is not None
    assert Lru(budget=8000).largest == 1000


@pytest.mark.parametrize("rows", [0, 3])
def test_a_remembered_state_is_the_state_read(rows):
    """A snapshot parsed once and remembered equals the one read afresh."""
    h = harness()
    box = Container(h, Lru())
    box.invoke(*h.upload_dimensions(staff=[staff(i + 1) for i in range(rows)] or [staff()]))
    warm = committed.Committed(RememberingStore(h.processed, box.memory, "processed"), h.ids, PREFIX)
    cold = committed.Committed(h.processed, h.ids, PREFIX)
    for table in ("staff", "department", "currency"):
        assert warm.state(table).equals(cold.state(table))
        assert isinstance(warm.state(table), pa.Table)


class CountingIds:
    """Packet ids counting reads, able to fail a write after storing it (a lost reply)."""

    def __init__(self, ids) -> None:
        self.ids, self.reads, self.fail_next_write = ids, Counter(), False

    def read_packet_id(self, name: str) -> int:
        self.reads[name] += 1
        return self.ids.read_packet_id(name)

    def write_packet_id(self, name: str, packet_id: int) -> None:
        self.ids.write_packet_id(name, packet_id)
        if self.fail_next_write:
            self.fail_next_write = False
            raise ConnectionError("the reply was lost")


def test_packet_ids_are_read_once_per_invocation_and_never_carried_over():
    h = harness()
    box = Container(h, Lru())
    box.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 2, [sales_order(2, updated="2023-01-02T00:00:00")])
    counting = CountingIds(h.ids)
    metrics = Metrics(stream=io.StringIO())
    pipeline = Pipeline(h.ingestion, RememberingStore(h.processed, box.memory, "processed"), counting, PREFIX, metrics)
    pipeline.run(parse_event({"packets": [{"table": "sales_order", "id": 2}]}))  # catches up 1 first
    assert h.consumed("sales_order") == 2
    assert counting.reads and max(counting.reads.values()) == 1
    # An id moved between invocations (an operator) is what the next invocation sees.
    consumed = "/totesys/processing/consumed/sales_order"
    h.ids.values[consumed] = 5
    fresh = Pipeline(h.ingestion, h.processed, counting, PREFIX, metrics)
    assert fresh.consumed("sales_order") == 5


def test_a_failed_write_of_an_id_forgets_it():
    from runtime.remembered import InvocationIds

    h = harness()
    counting = CountingIds(h.ids)
    ids = InvocationIds(counting)
    name = "/totesys/processing/consumed/staff"
    assert ids.read_packet_id(name) == 0
    counting.fail_next_write = True
    with pytest.raises(ConnectionError):
        ids.write_packet_id(name, 1)
    assert ids.read_packet_id(name) == 1 and counting.reads[name] == 2
    ids.write_packet_id(name, 2)
    assert ids.read_packet_id(name) == 2 and counting.reads[name] == 2
