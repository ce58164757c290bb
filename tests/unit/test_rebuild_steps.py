"""The rebuild's steps refuse what would not be a fresh or resumable target, and its
entry point refuses malformed events and the live buckets (runtime/rebuild)."""

from __future__ import annotations

import pytest

from runtime.errors import CorruptRecordError, InvalidEventError
from runtime.rebuild import entry, steps
from runtime.rebuild.plan import PLAN_KEY
from tests.support.harness import sales_order
from tests.unit.test_rebuild import TARGET_PREFIX, Rebuild, small_history


def test_a_target_that_is_not_empty_is_refused():
    rebuild = Rebuild(small_history().ingestion)
    rebuild.store.put_if_absent("fact_sales_order/something.parquet", b"x", {})
    with pytest.raises(CorruptRecordError, match="not empty"):
        steps.plan(rebuild.target())


def test_a_target_whose_ids_moved_is_refused():
    rebuild = Rebuild(small_history().ingestion)
    rebuild.ids.values[f"{TARGET_PREFIX}/consumed/currency"] = 1
    with pytest.raises(CorruptRecordError, match="not 0"):
        steps.plan(rebuild.target())


def test_a_resumed_rebuild_keeps_its_plan_though_the_history_grew():
    live = small_history()
    rebuild = Rebuild(live.ingestion)
    first = steps.plan(rebuild.target())
    live.upload("sales_order", 4, [sales_order(9)])  # the ingestion writes on meanwhile
    again = steps.plan(rebuild.target())
    assert again["items"] == first["items"] and rebuild.store.read(PLAN_KEY) is not None
    assert {"table": "sales_order", "id": 4} not in again["items"]


def test_facts_are_not_staged_before_the_dimensions():
    rebuild = Rebuild(small_history().ingestion)
    planned = steps.plan(rebuild.target())
    with pytest.raises(CorruptRecordError, match="before the dimensions"):
        steps.stage_items(rebuild.target(), planned["items"][:1])


def test_the_commit_stops_at_a_packet_not_staged():
    rebuild = Rebuild(small_history().ingestion)
    planned = steps.plan(rebuild.target())
    steps.dimensions(rebuild.target(), steps.Budget(lambda: 1e9, 0))
    with pytest.raises(CorruptRecordError, match="not staged"):
        steps.commit(rebuild.target(), steps.Budget(lambda: 1e9, 0))
    assert planned["fact_items"] == 2


def test_a_budget_stops_a_step_between_packets():
    rebuild = Rebuild(small_history().ingestion)
    steps.plan(rebuild.target())
    clock = iter([1000.0, 1000.0, 10.0])
    result = steps.dimensions(rebuild.target(), steps.Budget(lambda: next(clock), reserve=180))
    assert result == {"dimensions_done": False, "dimension_packets_left": 6}  # 2 of the 8 done
    assert steps.dimensions(rebuild.target(), steps.Budget(lambda: 1000.0, 180)) == {
        "dimensions_done": True, "dimension_packets_left": 0}


@pytest.mark.parametrize("event, problem", [
    ({"rebuild": {"step": "drop", "target": {"bucket": "totesys-dev-generation-g2", "ssm_prefix": "/g"}}}, "step"),
    ({"rebuild": {"step": "plan", "target": {"bucket": "Not A Bucket", "ssm_prefix": "/g"}}}, "bucket"),
    ({"rebuild": {"step": "plan", "target": {"bucket": "totesys-dev-generation-g2", "ssm_prefix": "g"}}}, "ssm_prefix"),
    ({"rebuild": {"step": "plan"}, "packets": []}, "nothing else"),
])  # fmt: skip
def test_a_malformed_rebuild_event_is_refused(event, problem):
    with pytest.raises(InvalidEventError, match=problem):
        entry.handle(event, None)


def test_the_live_buckets_and_ids_are_never_a_target(monkeypatch):
    monkeypatch.setenv("INGESTION_BUCKET", "totesys-ingestion-x")
    monkeypatch.setenv("PROCESSED_BUCKET", "totesys-processed-x")
    monkeypatch.setenv("SSM_PREFIX", "/totesys/x/processing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    entry.reset()
    try:
        for target in ({"bucket": "totesys-processed-x", "ssm_prefix": "/totesys/x/generations/g"},
                       {"bucket": "totesys-x-generation-g", "ssm_prefix": "/totesys/x/processing"}):
            with pytest.raises(InvalidEventError, match="new generation"):
                entry.handle({"rebuild": {"step": "plan", "target": target}}, None)
    finally:
        entry.reset()
