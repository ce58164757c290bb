"""Faults at the AWS boundary, at the call sites the handler really has.

The handler runs in this process against moto's server, through the S3 and SSM clients
it builds itself (botocore standard retry mode, max_attempts 5: five retries, six
attempts); an Injector on those clients' event system spoils chosen calls (see
faults.py for the kinds). The SDK's backoff sleeps are patched to zero (no_backoff),
nothing else about retrying changes.

The workload is E1, E2, E3 (workload.py). An undisturbed run records the sequence of
calls; a call site is what a call does (operation and the role of its key or
parameter: `s3.PutObject _commits`, `ssm.GetParameter produced`, ...).

1. Transient faults, every call: one run per kind in which EVERY call's first attempt
   is spoiled (a single 503 SlowDown / ThrottlingException / 500 / reset / lost
   response); the SDK's retry must absorb each, and the end state must equal the
   undisturbed one. Then the same with 5 spoiled attempts (all but the last) at every
   23rd call, and a slow response (0.15 s, far below the read timeout) at every 10th.
2. Persistent faults, sampled: for each of E1 and E2, the first call of every call site
   it has fails on all 6 attempts (or once, for what the SDK does not retry: 403, a
   broken body). The kinds take turns over those sites in call order (throttle,
   server_error, reset, timeout, refused: each kind meets every fifth site of each
   event); a lost response (`timeout`) is also tried at the first call of every write
   site, and the two body faults at the first GetObject of each role that returns a
   body. (Every call × every kind would be about 280 × 7 runs of ~2 s each; the
   transient tests above do cover every call.) The invocation must fail with a typed
   error, never a botocore one; then ANOTHER event runs (E2 after E1, E3 after E2) in
   the same warm process, then Lambda's retry of the failed event, then the rest: the
   end state must be the undisturbed one, every row exactly once.

   A failure before the event's pending mark is written leaves no trace: it is as if
   the event arrived at its retry. Its expected end state is the undisturbed run of
   the events in that order; rows are still compared with the undisturbed run.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from runtime.adapters.aws import CLIENT_CONFIG
from runtime.errors import ProcessingError, StorageError, StorageUnavailableError
from runtime.handler import lambda_handler
from tests.reliability import report
from tests.reliability.conftest import handler_clients
from tests.reliability.faults import ALWAYS, BODY_KINDS, SDK_RETRIED, WRITES, Call, Fault, Injector
from tests.reliability.workload import E1, E2, E3, EVENTS, census, emitted_rows, event, late_arrival

# botocore's `max_attempts` counts the retries after the first attempt (its Config
# docstring; `total_max_attempts` counts them all): max_attempts=5 is 6 attempts.
TOTAL_ATTEMPTS = CLIENT_CONFIG.retries["max_attempts"] + 1
PERSISTENT_KINDS = (*SDK_RETRIED, "refused")
EXPECTED_ERROR = {
    "throttle": StorageUnavailableError, "server_error": StorageUnavailableError,
    "reset": StorageUnavailableError, "timeout": StorageUnavailableError, "refused": StorageError,
    "body_reset": StorageUnavailableError, "body_corrupt": (StorageUnavailableError, StorageError),
}
SWEPT_EVENTS = (0, 1)  # E1 and E2; E3 is the small event that follows a failed E2
# After a failure in event j: the other event, then Lambda's retry, then the rest.
RECOVERY = {0: (E1, E2, E1, E3), 1: (E1, E2, E3, E2)}
# The order the events take effect in when event j failed before its pending mark.
EFFECTIVE = {0: (E2, E1, E3), 1: (E1, E3, E2)}


class Run:
    def __init__(self, calls, bounds, errors, state) -> None:
        self.calls, self.bounds, self.errors, self.state = calls, bounds, errors, state

    def faulted(self) -> list[Call]:
        return [c for c in self.calls if c.faults]

    def event_of(self, index: int) -> int:
        return next(j for j, end in enumerate(self.bounds) if index < end)

    def calls_of(self, j: int) -> list[Call]:
        start = self.bounds[j - 1] if j else 0
        return self.calls[start : self.bounds[j]]


def run(stack, sequence, plan=None) -> Run:
    """A cold start on a fresh stack, then each event of `sequence` in the same process."""
    stack.fresh()
    injector = Injector(plan).attach(*handler_clients())
    bounds, errors = [], []
    for i, packets in enumerate(sequence):
        if i == len(sequence) - 1 and len(sequence) > 1:
            # Before the last event: the passed-over address:2 arrives and an operator
            # asks for it (uninjected clients: the operator's own). Its outputs touch
            # no table the events write in between, so the end state is the same
            # whichever event comes last.
            late_arrival(stack.s3)
        try:
            lambda_handler(event(packets), None)
            errors.append(None)
        except Exception as exc:  # noqa: BLE001 - what escaped is what is checked
            errors.append(exc)
        bounds.append(len(injector.calls))
    return Run(injector.calls, bounds, errors, stack.end_state())


@pytest.fixture(scope="module")
def reference(module_stack):
    canonical = run(module_stack, EVENTS)
    assert canonical.errors == [None] * len(EVENTS)
    rows = emitted_rows(canonical.state)
    # What the workload means: a negative units_sold, a three-decimal price and a broken
    # line are quarantined; order 3 (its staff waits for a department) is quarantined,
    # then written by the replay department 2's arrival queues; order 5's exact
    # duplicate is written once; department 2 re-emits staff 1 and (now) 3.
    assert sorted(dict(r)["sales_order_id"] for r in rows["fact_sales_order"]) == [1, 1, 2, 3, 4, 5]
    # address:2 was passed over, arrived late and was processed late (older than the state:
    # nothing emitted); order 1's re-send in sales_order:3 was skipped.
    assert canonical.state.keys("_commits/late/") == ["_commits/late/address/address_packet_2.json"]
    assert canonical.state.keys("_gaps/") == [] and canonical.state.keys("_history/sales_order/")
    assert [dict(r)["staff_id"] for r in rows["dim_staff"]] == [1, 2, 1, 3, 4]
    per_event = ", ".join(f"E{j + 1} {len(canonical.calls_of(j))}" for j in range(len(EVENTS)))
    report.NOTES.append(f"undisturbed E1-E3: {len(canonical.calls)} calls ({per_event}) at "
                        f"{len({c.site for c in canonical.calls})} distinct call sites")
    effective = {}
    for order in set(EFFECTIVE.values()):
        other = run(module_stack, order)
        assert other.errors == [None] * len(order)
        effective[order] = other.state
    return canonical, effective


def _typed(error, kind) -> str | None:
    """Why `error` is not what a persistent `kind` fault must raise, or None."""
    if error is None:
        return "the invocation succeeded"
    if isinstance(error, (BotoCoreError, ClientError)) or not isinstance(error, ProcessingError):
        return f"untyped {type(error).__module__}.{type(error).__name__}: {error}"
    if not isinstance(error, EXPECTED_ERROR[kind]):
        return f"{type(error).__name__} instead of {EXPECTED_ERROR[kind]}: {error}"
    return None


# -- 1. transient faults at every call ----------------------------------------------


# A retried call costs the client 14 tokens of the SDK's retry quota (500), or 5 for
# throttling, refunded when the retry succeeds. A conditional put whose response was lost
# is retried into 412 Precondition Failed, which refunds nothing (the adapter then finds
# its own bytes there: success), and only a call that succeeds at once adds a token
# back. The ~60 puts of the workload cannot all lose their response in one client's
# life: with a warm container's remembered reads (about 21 calls an event, not 44), even
# half of them drain the quota. So `timeout` spoils every third call, in three runs (by
# the call's rank among the calls of its operation and role, which the extra
# HeadObject after a 412 does not shift).
STRIPES = {"timeout": 3}


def striped(kind: str, stripes: int, stripe: int):
    seen: Counter = Counter()

    def plan(call: Call) -> Fault | None:
        rank = seen[(call.op, call.role)]
        seen[(call.op, call.role)] += 1
        return Fault(kind, 1) if rank % stripes == stripe else None

    return plan


@pytest.mark.parametrize("kind", SDK_RETRIED)
def test_a_single_transient_fault_at_every_call_is_absorbed_by_the_sdk(module_stack, reference, no_backoff, kind):
    canonical, _ = reference
    stripes = STRIPES.get(kind, 1)
    faulted = []
    for stripe in range(stripes):
        result = run(module_stack, EVENTS, plan=striped(kind, stripes, stripe))
        faulted += result.faulted()
        rows = census(result.state, canonical.state)
        report.add(f"{kind} x1", **{"call sites tried": len(result.faulted()),
                                     "survived (SDK retries)": len(result.faulted()) if not any(result.errors) else 0,
                                     "rows lost": rows.lost, "rows duplicated": rows.duplicated})
        assert result.errors == [None] * len(EVENTS)
        assert all(c.attempts == 2 for c in result.faulted())
        assert result.state == canonical.state, result.state.diff(canonical.state)
    assert len(faulted) >= len(canonical.calls)
    assert {c.site for c in faulted} >= {c.site for c in canonical.calls}


STRIDE = 23


def test_all_attempts_but_the_last_spoiled_are_still_absorbed(module_stack, reference, no_backoff):
    canonical, _ = reference

    def plan(call):
        # Every 23rd call: five spoiled attempts cost the client up to 50 tokens of the
        # SDK's retry quota (500, refilled by successful calls), so this density is what
        # one client's quota absorbs over the ~410 calls of E1-E3 (every 17th or 19th exhausted it
        # in E3 once the late packet's calls were added).
        if call.index % STRIDE == 0:
            return Fault(SDK_RETRIED[(call.index // STRIDE) % len(SDK_RETRIED)], TOTAL_ATTEMPTS - 1)
        return None

    result = run(module_stack, EVENTS, plan)
    faulted = result.faulted()
    report.add(f"SDK-retried kinds x{TOTAL_ATTEMPTS - 1}", **{"call sites tried": len(faulted),
                                        "survived (SDK retries)": len(faulted) if not any(result.errors) else 0})
    assert result.errors == [None] * len(EVENTS)
    assert all(c.attempts == TOTAL_ATTEMPTS and c.faults == TOTAL_ATTEMPTS - 1 for c in faulted)
    assert result.state == canonical.state, result.state.diff(canonical.state)


def test_a_slow_response_changes_nothing(module_stack, reference):
    canonical, _ = reference
    result = run(module_stack, EVENTS, plan=lambda call: Fault("slow") if call.index % 10 == 3 else None)
    faulted = result.faulted()
    report.add("slow", **{"call sites tried": len(faulted),
                          "survived (SDK retries)": len(faulted) if not any(result.errors) else 0})
    assert result.errors == [None] * len(EVENTS)
    assert faulted and all(c.attempts == 1 for c in result.calls)  # nothing retried
    assert result.state == canonical.state, result.state.diff(canonical.state)


# -- 2. persistent faults: a typed failure, another event, the retry -----------------


def persistent_sample(canonical: Run) -> dict[str, list[int]]:
    """kind -> the call indexes it is tried at (see the module docstring)."""
    sample: dict[str, list[int]] = {k: [] for k in (*PERSISTENT_KINDS, *BODY_KINDS)}
    first_anywhere: dict[str, Call] = {}
    for j in SWEPT_EVENTS:
        first: dict[str, Call] = {}
        for call in canonical.calls_of(j):
            first.setdefault(call.site, call)
            first_anywhere.setdefault(call.site, call)
        for turn, call in enumerate(first.values()):
            sample[PERSISTENT_KINDS[turn % len(PERSISTENT_KINDS)]].append(call.index)
    for call in first_anywhere.values():
        if call.op in WRITES and call.index not in sample["timeout"]:
            sample["timeout"].append(call.index)
        if call.op == "s3.GetObject" and call.status == 200:
            for kind in BODY_KINDS:
                sample[kind].append(call.index)
    return {kind: sorted(indexes) for kind, indexes in sample.items()}


def pending_mark(canonical: Run, j: int) -> int:
    # The event's own record is its first put under _pending/ (a replay that its
    # dimension packets queue comes later).
    return [c.index for c in canonical.calls_of(j) if c.site == "s3.PutObject _pending"][0]


@pytest.mark.parametrize("kind", (*PERSISTENT_KINDS, *BODY_KINDS))
def test_a_persistent_fault_fails_typed_and_the_retry_after_another_event_recovers(
    module_stack, reference, no_backoff, kind
):
    canonical, effective = reference
    attempts = 1 if kind in BODY_KINDS or kind == "refused" else ALWAYS
    problems = []
    for index in persistent_sample(canonical)[kind]:
        site = canonical.calls[index]
        j = canonical.event_of(index)
        result = run(module_stack, RECOVERY[j], lambda call, i=index: Fault(kind, attempts) if call.index == i else None)
        hit = result.calls[index]
        where = f"E{j + 1} call {index} {site.site} ({site.target})"
        assert (hit.op, hit.target) == (site.op, site.target), f"{where}: the run diverged before the fault"
        problems_here = []
        if hit.attempts != (TOTAL_ATTEMPTS if attempts == ALWAYS else 1):
            problems_here.append(f"{hit.attempts} attempts")
        failed = _typed(result.errors[j], kind)
        if failed:
            problems_here.append(failed)
        others = [e for n, e in enumerate(result.errors) if n != j and e is not None]
        if others:
            problems_here.append(f"a later invocation failed: {others[0]!r}")
        before_mark = index < pending_mark(canonical, j) or (index == pending_mark(canonical, j) and kind != "timeout")
        expected = effective[EFFECTIVE[j]] if before_mark else canonical.state
        rows = census(result.state, canonical.state)
        if rows.lost or rows.duplicated:
            problems_here.append(f"{rows.lost} rows lost, {rows.duplicated} duplicated")
        if result.state != expected:
            order = " then ".join("E%d" % (EVENTS.index(e) + 1) for e in EFFECTIVE[j]) if before_mark else "E1 E2 E3"
            problems_here.append(f"end state is not the undisturbed run of {order}:\n{result.state.diff(expected)}")
        report.add(f"{kind} {'x' + str(TOTAL_ATTEMPTS) if attempts == ALWAYS else 'x1'}", **{
            "call sites tried": 1,
            "failed typed, recovered": 0 if problems_here else 1,
            "rows lost": rows.lost, "rows duplicated": rows.duplicated,
            "of which before the pending mark": int(before_mark)})
        problems += [f"{where}{' [before the pending mark]' if before_mark else ''}: {p}" for p in problems_here]
    assert not problems, "\n".join(problems)


def test_an_event_that_failed_before_its_pending_mark_loses_no_facts_to_the_next_event(
    module_stack, reference, no_backoff
):
    """S3 throttles E1's very first call (listing `_pending/`) on every attempt, so
    nothing of E1 is recorded; E2 arrives before Lambda's retry of E1. E2 names
    sales_order:2, so sales_order:1 is caught up first, but the staff, counterparty,
    currency and design packets it refers to are E1's and still unprocessed. Every
    order must still end up in fact_sales_order once, as in the undisturbed run."""
    canonical, _ = reference
    result = run(module_stack, (E1, E2, E1, E3), plan=lambda c: Fault("throttle", ALWAYS) if c.index == 0 else None)
    assert isinstance(result.errors[0], StorageUnavailableError)
    assert result.errors[1:] == [None, None, None]
    got = Counter(emitted_rows(result.state)["fact_sales_order"])
    want = Counter(emitted_rows(canonical.state)["fact_sales_order"])
    missing = sorted((dict(r)["sales_order_id"], str(dict(r)["last_updated_date"])) for r in want - got)
    quarantined = {}
    for key in result.state.keys("_quarantine/fact_sales_order/"):
        for line in result.state.objects[key][0].decode().splitlines():
            row = json.loads(line)
            if "sales_order_id" in row:
                quarantined[row["sales_order_id"]] = row["_reasons"]
    assert not missing, (
        f"facts lost from fact_sales_order: {missing}; quarantined with reasons: "
        + "; ".join(f"order {k}: {v}" for k, v in sorted(quarantined.items()))
    )
