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
tests.reliability.procs --once ...`), to show the forked children behave as those do.
"""

from __future__ import annotations

import pytest

from tests.reliability import report
from tests.reliability.conftest import handler_env
from tests.reliability.procs import KILLED, Zygote, run_once
from tests.reliability.workload import E1, E2, census, event


@pytest.fixture(scope="module")
def zygote(moto, tmp_path_factory):
    z = Zygote(handler_env(moto), tmp_path_factory.mktemp("procs") / "zygote.log")
    yield z
    z.close()


@pytest.fixture(scope="module")
def undisturbed(module_stack, zygote):
    first = zygote.run({"invoke": event(E1)})
    second = zygote.run({"invoke": event(E2)})
    assert (first["exit"], second["exit"]) == (0, 0), (first, second)
    return first["writes"], module_stack.end_state()


def _kill_run(stack, runner, n):
    stack.fresh()
    killed = runner({"invoke": event(E1), "kill_after": n})
    other = runner({"invoke": event(E2)})
    retry = runner({"invoke": event(E1)})
    return killed, other, retry, stack.end_state()


def test_killed_after_every_write_of_e1_then_e2_then_the_retry(module_stack, zygote, undisturbed):
    writes, expected = undisturbed
    problems = []
    for n in range(1, len(writes) + 1):
        killed, other, retry, state = _kill_run(module_stack, zygote.run, n)
        rows = census(state, expected)
        ok = (killed["exit"] == KILLED and killed["writes"] == writes[:n]
              and other["exit"] == 0 and retry["exit"] == 0 and state == expected)
        report.add("process killed (os._exit 137)", **{
            "call sites tried": 1, "failed typed, recovered": int(ok),
            "rows lost": rows.lost, "rows duplicated": rows.duplicated})
        if not ok:
            problems.append(
                f"killed after write {n} ({writes[n - 1]}): exits {killed['exit']}/{other['exit']}/"
                f"{retry['exit']} {other.get('error') or retry.get('error') or ''}\n{state.diff(expected)}"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where", ["first", "middle"])
def test_a_freshly_started_interpreter_dies_and_recovers_the_same_way(module_stack, moto, undisturbed, where):
    writes, expected = undisturbed
    n = {"first": 1, "middle": len(writes) // 2}[where]
    env = handler_env(moto)
    killed, other, retry, state = _kill_run(module_stack, lambda c: run_once(c, env), n)
    assert killed["exit"] == KILLED and killed["writes"] == writes[:n]
    assert (other["exit"], retry["exit"]) == (0, 0), (other, retry)
    assert state == expected, state.diff(expected)
