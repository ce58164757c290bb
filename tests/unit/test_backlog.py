"""A backlog longer than one invocation (docs/design.md#backlog): never refused, worked
in order, stopped between two packets before the timeout, carried on by the next
invocation, nothing committed twice."""

from types import SimpleNamespace

import pytest

from runtime import handler, keys
from runtime.events import parse_event
from runtime.observability import Metrics
from runtime.pipeline import Pipeline, RunSummary
from tests.support.fakes import SimulatedKill
from tests.support.harness import PREFIX, Harness, sales_order

MARGIN = 120.0


class FakeContext:
    """Lambda's context: time for `packets` packets, then less than the margin (the
    clock runs out midway). The first packet of an invocation is done without a look."""

    def __init__(self, packets: int) -> None:
        self.checks = packets - 1

    def get_remaining_time_in_millis(self) -> int:
        self.checks -= 1
        return 900_000 if self.checks >= 0 else int(MARGIN * 1000) - 1


def invoke(h: Harness, *packets: str, context: FakeContext | None = None) -> RunSummary:
    event = parse_event({"packets": [{"table": p.split(":")[0], "id": int(p.split(":")[1])} for p in packets]})
    metrics = Metrics(stream=h.metric_stream)
    pipeline = Pipeline(h.ingestion, h.processed, h.ids, PREFIX, metrics, handler._seconds_left(context), MARGIN)
    try:
        return pipeline.run(event)
    finally:
        metrics.flush()


@pytest.fixture
def h():
    harness = Harness()
    invoke(harness, *harness.upload_dimensions())
    return harness


def _sales(h: Harness, packets: range) -> None:
    for k in packets:
        h.upload("sales_order", k, [sales_order(k)])


def _fact_ids(h: Harness) -> list[int]:
    return [r["sales_order_id"] for r in h.rows("fact_sales_order")]


def test_the_run_stops_between_packets_before_the_timeout_and_the_next_one_carries_on(h, caplog):
    _sales(h, range(1, 11))
    summary = invoke(h, "sales_order:10", context=FakeContext(packets=4))
    assert [o.packet for o in summary.outcomes] == [f"sales_order:{k}" for k in range(1, 5)]
    assert summary.left_pending == ["sales_order:5..10"]
    assert h.consumed("sales_order") == 4
    assert h.processed.list_keys(keys.PENDING) != []  # the rest stays pending, durably
    [stop] = [r for r in caplog.records if "stopping before the timeout" in r.getMessage()]
    assert stop.levelname == "WARNING" and stop.next == "sales_order:5"
    assert stop.left_pending == ["sales_order:5..10"] and len(stop.processed) == 4
    line = handler._summary(summary, ["sales_order:10"], 0.0, None)
    assert line["status"] == "stopped_early" and line["left_pending"] == ["sales_order:5..10"]

    # The next event (empty, or naming anything) finishes the rest first, in order.
    summary = invoke(h, context=FakeContext(packets=100))
    assert [o.packet for o in summary.outcomes] == [f"sales_order:{k}" for k in range(5, 11)]
    assert summary.left_pending is None
    assert _fact_ids(h) == list(range(1, 11))  # in order, each once
    h.check_invariants()


def test_a_packet_far_ahead_is_never_refused_and_is_worked_off_over_several_invocations(h):
    _sales(h, range(1, 8))
    summary = invoke(h, "sales_order:5000", context=FakeContext(packets=3))
    assert [o.packet for o in summary.outcomes] == ["sales_order:1", "sales_order:2", "sales_order:3"]
    assert summary.left_pending == ["sales_order:4..5000"]
    summary = invoke(h, "sales_order:2", context=FakeContext(packets=2))  # an older name: already done
    assert [o.packet for o in summary.outcomes] == ["sales_order:4", "sales_order:5"]
    assert summary.left_pending == ["sales_order:6..5000"]
    assert _fact_ids(h) == [1, 2, 3, 4, 5]


def test_later_events_wait_behind_the_backlog_in_arrival_order(h):
    _sales(h, range(1, 7))
    h.upload("staff", 2, [{"staff_id": 1, "first_name": "A", "last_name": "B", "department_id": 1,
                           "email_address": "a@b.c", "created_at": "2022-11-03T14:20:51.563000",
                           "last_updated": "2022-11-03T14:20:51.563000"}])
    invoke(h, "sales_order:6", context=FakeContext(packets=2))
    summary = invoke(h, "staff:2", context=FakeContext(packets=2))  # still the backlog first
    assert [o.packet for o in summary.outcomes] == ["sales_order:3", "sales_order:4"]
    assert summary.left_pending == ["sales_order:5..6", "staff:2"]
    summary = invoke(h)
    assert [o.packet for o in summary.outcomes] == ["sales_order:5", "sales_order:6", "staff:2"]
    h.check_invariants()


@pytest.mark.parametrize("kill_after", [1, 2, 3, 5, 8])
def test_a_kill_after_stopping_early_then_a_retry_commits_every_packet_once(h, kill_after):
    _sales(h, range(1, 9))
    invoke(h, "sales_order:8", context=FakeContext(packets=3))
    h.writes.kill_after = h.writes.count + kill_after  # the next invocation dies midway
    with pytest.raises(SimulatedKill):
        invoke(h, context=FakeContext(packets=100))
    summary = invoke(h)  # Lambda's retry, with no limit
    assert summary.left_pending is None
    assert _fact_ids(h) == list(range(1, 9))
    h.check_invariants()


def test_an_invocation_always_does_one_packet_so_a_short_timeout_still_progresses(h):
    _sales(h, range(1, 4))
    for done in (1, 2, 3):
        summary = invoke(h, "sales_order:3", context=FakeContext(packets=0))  # never enough time, from the start
        assert [o.packet for o in summary.outcomes] == [f"sales_order:{done}"]
    assert summary.left_pending is None
    assert _fact_ids(h) == [1, 2, 3]
    h.check_invariants()


def test_without_a_context_there_is_no_limit():
    assert handler._seconds_left(None) is None
    assert handler._seconds_left(object()) is None
    assert handler._seconds_left(FakeContext(packets=2))() == 900.0


class FakeLambda:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def invoke(self, **call):
        from botocore.exceptions import EndpointConnectionError

        if self.fail:
            raise EndpointConnectionError(endpoint_url="https://lambda")
        self.calls.append(call)


def test_stopped_early_it_invokes_itself_asynchronously_with_an_empty_event(monkeypatch):
    fake = FakeLambda()
    monkeypatch.setattr(handler, "_lambda_client", lambda: fake)
    context = SimpleNamespace(invoked_function_arn="arn:aws:lambda:eu-west-2:123456789012:function:f")
    assert handler._carry_on(context, ["sales_order:5..10"]) == "invoked itself"
    assert fake.calls == [{"FunctionName": context.invoked_function_arn, "InvocationType": "Event",
                           "Payload": b'{"packets": []}'}]


def test_if_it_cannot_invoke_itself_the_next_event_carries_on(monkeypatch, caplog):
    monkeypatch.setattr(handler, "_lambda_client", lambda: FakeLambda(fail=True))
    context = SimpleNamespace(invoked_function_arn="arn:aws:lambda:eu-west-2:123456789012:function:f")
    assert handler._carry_on(context, ["sales_order:5..10"]) == "with the next event"
    assert any("could not invoke itself" in r.getMessage() for r in caplog.records)
    assert handler._carry_on(None, ["sales_order:5..10"]) == "with the next event"  # a local run
