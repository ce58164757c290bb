"""The kill-after-every-write sweep again, through the real S3 and SSM adapters over
HTTP: the conditional puts (412 Precondition Failed) are moto's, not a fake's
(tests/support/backends.py MotoBackend: the kill lands right after the n-th write
moto answered 2xx)."""

from __future__ import annotations

from runtime import keys
from tests.support.backends import MotoBackend
from tests.support.harness import DIMENSIONS, department, sales_order, staff
from tests.support.kill_sweep import Arrive, Invoke, KillSweep, Late, Scenario, dimensions

E1 = Invoke((*(f"{t}:1" for t in DIMENSIONS), "sales_order:1"))
E2 = Invoke(("department:2", "staff:2", "sales_order:2"))

# Killed in either event; the other one first (E2, or a repeat of E1), then Lambda's retry.
EVENTS = Scenario(
    seed=(
        dimensions(),
        Arrive((
            ("sales_order", 1, [sales_order(1), sales_order(2, staff_id=2), "broken"]),
            ("department", 2, [department(1, "Sales", "Leeds", updated="2023-01-01T00:00:00")]),
            ("staff", 2, [staff(2, 1, "Deron", "Beier", updated="2023-01-02T00:00:00")]),
            ("sales_order", 2, [sales_order(1, updated="2023-02-01T00:00:00", units_sold=3),
                                sales_order(3, staff_id=2)]),
        )),
    ),
    steps=(E1, E2),
    sample=5,
)


def test_killed_after_every_write_over_s3(aws, moto):
    sweep = KillSweep(EVENTS, MotoBackend(moto, aws.s3, aws.ssm, aws.names))
    objects, _ = sweep.reference.state
    assert any(k.startswith("dim_staff/dim_staff_packet_3_") for k in objects)
    for point in sweep.points():
        sweep.check(point)


# -- the new writers over S3: passing over, late packets, the fact memory --------------

NEW_WRITERS = ("put _gaps/", "delete _gaps/", "put _commits/late/", "put _history/", "put _state/staff/staff_late")

LATE = Scenario(
    seed=(
        dimensions(),
        Arrive((
            ("sales_order", 1, [sales_order(1), sales_order(2)]),
            ("sales_order", 3, [sales_order(3), sales_order(1)]),  # order 1 re-sent
            ("staff", 3, [staff(4, 1, "Bo", "Ng", updated="2023-01-03T00:00:00")]),
        )),
    ),
    steps=(
        E1,
        Invoke(("sales_order:3", "staff:3")),
        Arrive((
            ("staff", 2, [staff(3, 1, "Ann", "Lee", updated="2023-01-02T00:00:00")]),
            ("sales_order", 2, [sales_order(2, units_sold=9), sales_order(5, staff_id=3)]),  # 2 changed in place
        )),
        Late("staff", 2),
        Late("sales_order", 2),
        Invoke(()),
    ),
    meanwhile=E1,  # another event (a duplicate invoke) before the retry
    # Kill right after each write of a new writer (the sweep in tests/unit/test_recovery.py
    # kills after every write; this one checks the same writers through moto's HTTP API).
    kill_at=lambda write: write.startswith(NEW_WRITERS),
    sample=4,
)


def test_late_packets_and_the_fact_memory_killed_at_each_of_their_writes_over_s3(aws, moto):
    sweep = KillSweep(LATE, MotoBackend(moto, aws.s3, aws.ssm, aws.names))
    objects, _ = sweep.reference.state
    assert any(k.startswith(f"{keys.LATE_COMMITS}sales_order/") for k in objects)
    assert not any(k.startswith(keys.GAPS) for k in objects)
    assert len(sweep.all_points()) >= 8
    for point in sweep.points():
        sweep.check(point)
