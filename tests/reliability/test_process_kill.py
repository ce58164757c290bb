"""The process killed for real, after every write of a realistic event.

Each invocation runs in a child process of its own (procs.py: forked from a zygote that
has only imported the handler, so each is a cold start). The child running E1 calls
os._exit(137) right after its N-th successful write (S3 PutObject/DeleteObject or SSM
PutParameter answered 2xx, seen by an `after-call` hook on the handler's own clients):
no exception handler, no `finally`, no flush runs, and moto's server sees the
connection drop. Then a different event (E2) runs in a fresh child, then Lambda's retry
of E1 in another; the end state must equal the undisturbed one (E1 then E2, each in a
fresh child), byte for byte, with every row exactly once.

The in-process version with a simulated kill is tests/unit/test_recovery.py (and, over
moto, tests/integration/test_recovery_over_s3.py); this one kills real processes. Two
kill points (the first write and the middle one) also run in freshly started interpreters (`python -m
tests.reliability.procs --once ...`), to show the forked children behave as those do. All of
them are the one kill sweep (tests/support/kill_sweep.py) on the ProcessBackend.
"""

from __future__ import annotations

import pytest

from tests.reliability import report
from tests.reliability.conftest import handler_env
from tests.reliability.procs import KILLED, Zygote, run_once
from tests.reliability.workload import E1, E2, PACKETS, census
from tests.support.backends import ProcessBackend
from tests.support.kill_sweep import Arrive, Invoke, KillSweep, Point, Scenario

# E1 killed after any of its writes, then E2 (the next event), then Lambda's retry of E1.
SCENARIO = Scenario(
    seed=(Arrive(tuple((table, packet_id, rows) for (table, packet_id), rows in PACKETS.items())),),
    steps=(Invoke(E1), Invoke(E2)),
    killed=(0,),
    sample=None,  # every write, always: this suite is `make reliability`'s
)


@pytest.fixture(scope="module")
def zygote(moto, tmp_path_factory):
    z = Zygote(handler_env(moto), tmp_path_factory.mktemp("procs") / "zygote.log")
    yield z
    z.close()


@pytest.fixture(scope="module")
def sweep(module_stack, zygote):
    return KillSweep(SCENARIO, ProcessBackend(module_stack, zygote.run, KILLED))


def test_killed_after_every_write_of_e1_then_e2_then_the_retry(sweep):
    problems = []
    for point in sweep.points():
        recovery = sweep.recover(point)
        rows = census(recovery.state, sweep.reference.state)
        try:
            sweep.verify(recovery)
            ok = True
        except AssertionError as exc:
            ok = False
            problems.append(str(exc))
        report.add("process killed (os._exit 137)", **{
            "call sites tried": 1, "failed typed, recovered": int(ok),
            "rows lost": rows.lost, "rows duplicated": rows.duplicated})
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where", ["first", "middle"])
def test_a_freshly_started_interpreter_dies_and_recovers_the_same_way(module_stack, moto, sweep, where):
    writes = sweep.reference.writes[0]
    env = handler_env(moto)
    fresh = KillSweep(SCENARIO, ProcessBackend(module_stack, lambda command: run_once(command, env), KILLED),
                      reference=sweep.reference)
    fresh.check(Point(0, {"first": 1, "middle": len(writes) // 2}[where]))
