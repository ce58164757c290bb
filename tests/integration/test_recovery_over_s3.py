"""The kill-after-every-write sweep again, through the real S3 and SSM adapters over
HTTP: the conditional puts (412 Precondition Failed) are moto's, not a fake's."""

from __future__ import annotations

import pytest

from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.events import parse_event
from runtime.observability import Metrics
from runtime.pipeline import Pipeline
from sandbox.seed import LocalStack
from tests.support.fakes import SimulatedKill, Writes
from tests.support.harness import DIMENSIONS, department, encode_lines, sales_order, staff
from tests.support.sweep import kill_points as sampled


class Counting:
    """Wraps an adapter; every completed write counts, and may be the last one."""

    def __init__(self, inner, writes: Writes) -> None:
        self._inner, self._writes = inner, writes

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def put_if_absent(self, key, body, metadata):
        written = self._inner.put_if_absent(key, body, metadata)
        if written:
            self._writes.done(f"put {key}")
        return written

    def delete(self, key):
        self._inner.delete(key)
        self._writes.done(f"delete {key}")

    def write_packet_id(self, name, packet_id):
        before = self._inner.read_packet_id(name)
        self._inner.write_packet_id(name, packet_id)
        if before != packet_id:
            self._writes.done(f"ssm {name}={packet_id}")


E1 = [*(f"{t}:1" for t in DIMENSIONS), "sales_order:1"]
E2 = ["department:2", "staff:2", "sales_order:2"]


def upload(aws):
    def put(table, k, rows):
        aws.s3.put_object(Bucket=aws.names.ingestion_bucket,
                          Key=f"{table}/{table}_packet_{k}_ingested_x.jsonl", Body=encode_lines(rows))

    for table, rows in DIMENSIONS.items():
        put(table, 1, rows)
    put("sales_order", 1, [sales_order(1), sales_order(2, staff_id=2), "broken"])
    put("department", 2, [department(1, "Sales", "Leeds", updated="2023-01-01T00:00:00")])
    put("staff", 2, [staff(2, 1, "Deron", "Beier", updated="2023-01-02T00:00:00")])
    put("sales_order", 2, [sales_order(1, updated="2023-02-01T00:00:00", units_sold=3), sales_order(3, staff_id=2)])


def invoke(aws, writes, packets):
    names: LocalStack = aws.names
    pipeline = Pipeline(
        S3Bucket(aws.s3, names.ingestion_bucket),
        Counting(S3Bucket(aws.s3, names.processed_bucket), writes),
        Counting(SsmPacketIds(aws.ssm), writes),
        names.ssm_prefix,
        Metrics(stream=open("/dev/null", "w")),
    )
    event = parse_event({"packets": [{"table": p.split(":")[0], "id": int(p.split(":")[1])} for p in packets]})
    pipeline.run(event)


def snapshot(aws):
    objects = {k: aws.read(k) for k in aws.keys()}
    ids = {p["Name"]: p["Value"] for page in aws.ssm.get_paginator("get_parameters_by_path").paginate(
        Path=aws.names.ssm_prefix, Recursive=True) for p in page["Parameters"]}
    return objects, ids


def test_killed_after_every_write_over_s3(aws, moto):
    upload(aws)
    writes = Writes()
    invoke(aws, writes, E1)
    e1_writes = writes.count
    invoke(aws, writes, E2)
    total = writes.count
    expected = snapshot(aws)
    assert any(k.startswith("dim_staff/dim_staff_packet_3_") for k in expected[0])

    for kill_after in sampled(range(1, total + 1), sample=5):
        moto.reset()
        from sandbox.seed import create_resources

        create_resources(aws.s3, aws.ssm, aws.names)
        upload(aws)
        writes = Writes(kill_after)
        killed_in_e1 = kill_after <= e1_writes
        with pytest.raises(SimulatedKill):
            invoke(aws, writes, E1)
            invoke(aws, writes, E2)
        # Another event first (E2, or a repeat of E1), then Lambda's retry.
        invoke(aws, writes, E2 if killed_in_e1 else E1)
        invoke(aws, writes, E1 if killed_in_e1 else E2)
        assert snapshot(aws) == expected, f"kill after write {kill_after}"


# -- the new writers over S3: passing over, late packets, the fact memory --------------

NEW_WRITERS = ("put _gaps/", "delete _gaps/", "put _commits/late/", "put _history/", "put _state/staff/staff_late")


def late_steps(aws):
    def put(table, k, rows):
        aws.s3.put_object(Bucket=aws.names.ingestion_bucket,
                          Key=f"{table}/{table}_packet_{k}_ingested_x.jsonl", Body=encode_lines(rows))

    for table, rows in DIMENSIONS.items():
        put(table, 1, rows)
    put("sales_order", 1, [sales_order(1), sales_order(2)])
    put("sales_order", 3, [sales_order(3), sales_order(1)])  # order 1 re-sent
    put("staff", 3, [staff(4, 1, "Bo", "Ng", updated="2023-01-03T00:00:00")])

    def arrive():
        put("staff", 2, [staff(3, 1, "Ann", "Lee", updated="2023-01-02T00:00:00")])
        put("sales_order", 2, [sales_order(2, units_sold=9), sales_order(5, staff_id=3)])  # 2 changed in place

    def late(table, k):
        from runtime.operations import late as request

        names = aws.names
        request(S3Bucket(aws.s3, names.processed_bucket), S3Bucket(aws.s3, names.ingestion_bucket), table, k)

    return (
        ("invoke", E1),
        ("invoke", ["sales_order:3", "staff:3"]),
        ("do", arrive),
        ("do", lambda: late("staff", 2)),
        ("do", lambda: late("sales_order", 2)),
        ("invoke", []),
    )


def run_steps(aws, writes, steps):
    for step in steps:
        if step[0] == "invoke":
            invoke(aws, writes, step[1])
        else:
            step[1]()


def test_late_packets_and_the_fact_memory_killed_at_each_of_their_writes_over_s3(aws, moto):
    from sandbox.seed import create_resources

    steps = late_steps(aws)
    writes = Writes()
    run_steps(aws, writes, steps)
    expected = snapshot(aws)
    assert any(k.startswith("_commits/late/sales_order/") for k in expected[0])
    assert not any(k.startswith("_gaps/") for k in expected[0])
    # Kill right after each write of a new writer (the sweep in tests/unit/test_recovery.py
    # kills after every write; this one checks the same writers through moto's HTTP API).
    points = [i for i, what in enumerate(writes.log, start=1) if what.startswith(NEW_WRITERS)]
    assert len(points) >= 8
    for kill_after in sampled(points, sample=4):
        moto.reset()
        create_resources(aws.s3, aws.ssm, aws.names)
        steps = late_steps(aws)
        writes = Writes(kill_after)
        done = 0
        with pytest.raises(SimulatedKill):
            for done, step in enumerate(steps):
                run_steps(aws, writes, [step])
        invoke(aws, writes, E1)  # another event (a duplicate invoke) before the retry
        run_steps(aws, writes, steps[done:])  # the retry, then the rest
        assert snapshot(aws) == expected, f"kill after write {kill_after}"
