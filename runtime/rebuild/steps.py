"""The rebuild's steps, as the workflow calls them (docs/design.md#rebuild): plan,
dimensions, stage (a batch of fact items), commit, report.

Each step works on the ports only and is safe to call again: the plan is kept in the
target, the dimensions and the commit resume from the target's own `consumed` ids, and
a staged item is not staged twice. The sequential steps (dimensions, commit) stop
between two packets when their budget runs out and answer `done: false`; the workflow
calls them again. A packet takes seconds, so stopping with a few minutes left keeps
every call well inside Lambda's 15 minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from runtime.errors import CorruptRecordError
from runtime.observability import Metrics, logger
from runtime.pipeline import Pipeline
from runtime.ports import IngestionSource, PacketIds, ProcessedStore
from runtime.rebuild.commit import staged_compute
from runtime.rebuild.plan import ITEMS_KEY, PLAN_KEY, REBUILD, Plan, list_history
from runtime.rebuild.report import write_report
from runtime.rebuild.staging import stage
from runtime.tables import SOURCES, consumed_parameter, packet_id_parameters


@dataclass
class Budget:
    """When a sequential step stops: `seconds_left()` under `reserve`, or after
    `max_packets` packets (tests, and a bound on any one call)."""

    seconds_left: Callable[[], float]
    reserve: float = 180.0
    max_packets: int | None = None
    done: int = 0

    def spent(self) -> bool:
        if self.max_packets is not None and self.done >= self.max_packets:
            return True
        return self.seconds_left() < self.reserve


@dataclass(frozen=True)
class Target:
    """Where the rebuild writes: an empty bucket and an SSM prefix of its own."""

    source: IngestionSource
    store: ProcessedStore
    ids: PacketIds
    ssm_prefix: str
    metrics: Metrics

    def pipeline(self) -> Pipeline:
        return Pipeline(self.source, self.store, self.ids, self.ssm_prefix, self.metrics)

    def consumed(self, table: str) -> int:
        return self.ids.read_packet_id(consumed_parameter(self.ssm_prefix, table))


def plan(target: Target) -> dict:
    """List the history (or find the plan of a rebuild already under way) and write
    the fact items for the Distributed Map."""
    existing = target.store.read(PLAN_KEY)
    if existing is not None:
        chosen = Plan.from_json(existing)
        logger.info("rebuild plan found in the target: resuming", extra={"plan": PLAN_KEY})
    else:
        for name in packet_id_parameters(target.ssm_prefix):
            if target.ids.read_packet_id(name) != 0:  # KeyError names a missing parameter
                raise CorruptRecordError(f"the rebuild target's {name} is not 0: not a fresh target")
        others = [k for k in target.store.list_keys("") if not k.startswith(REBUILD)]
        if others:
            raise CorruptRecordError(f"the rebuild target is not empty (it holds {others[0]}, ...)")
        chosen = list_history(target.source)
        target.store.put_if_absent(PLAN_KEY, chosen.to_json(), {})
    items = chosen.fact_items()
    target.store.put_if_absent(ITEMS_KEY, json.dumps(items).encode(), {})
    dimension_packets = chosen.order(dimensions=True)
    logger.info("rebuild plan", extra={"packets": {t: len(ids) for t, ids in chosen.packets.items()},
                                       "fact_items": len(items)})
    return {"items_key": ITEMS_KEY, "fact_items": len(items), "items": items,
            "dimension_packets": len(dimension_packets), "dimensions_done": False, "commit_done": False}


def dimensions(target: Target, budget: Budget) -> dict:
    """The dimension packets in order, one at a time, through the live commit path."""
    chosen = _plan(target)
    pipeline = target.pipeline()
    todo = [r for r in chosen.order(dimensions=True) if target.consumed(r.table) < r.id]
    for ref in todo:
        if budget.spent():
            break
        pipeline.commit_packet(ref.table, ref.id, compute=None)
        budget.done += 1
    left = len(todo) - budget.done
    logger.info("rebuild dimensions", extra={"committed": budget.done, "left": left})
    return {"dimensions_done": left == 0, "dimension_packets_left": left}


def stage_items(target: Target, items: list[dict]) -> dict:
    """A batch of fact items: each packet staged against the rebuilt dimensions."""
    chosen = _plan(target)
    for ref in chosen.order(dimensions=True):
        if target.consumed(ref.table) < ref.id:
            raise CorruptRecordError(f"fact items staged before the dimensions are rebuilt ({ref} is not)")
    pipeline = target.pipeline()
    rows = 0
    for item in items:
        table, packet_id = item["table"], int(item["id"])
        if table not in SOURCES or SOURCES[table].keeps_state:
            raise CorruptRecordError(f"{table!r} is not a fact source")
        rows += stage(pipeline, target.store, table, packet_id)
    return {"items": len(items), "rows": rows}


def commit(target: Target, budget: Budget) -> dict:
    """The staged fact packets in order, through the commit steps; resumes from the
    target's `consumed` ids."""
    chosen = _plan(target)
    pipeline = target.pipeline()
    todo = [r for r in chosen.order(dimensions=False) if target.consumed(r.table) < r.id]
    for ref in todo:
        if budget.spent():
            break
        compute = staged_compute(pipeline, target.store, ref.id)
        pipeline.commit_packet(ref.table, ref.id, compute)
        budget.done += 1
    left = len(todo) - budget.done
    logger.info("rebuild commit", extra={"committed": budget.done, "left": left})
    return {"commit_done": left == 0, "fact_packets_left": left}


def report(target: Target) -> dict:
    return write_report(target.store, _plan(target))


def _plan(target: Target) -> Plan:
    data = target.store.read(PLAN_KEY)
    if data is None:
        raise CorruptRecordError(f"the rebuild target has no plan ({PLAN_KEY}): run the plan step first")
    return Plan.from_json(data)


def wall_clock(seconds: float) -> Callable[[], float]:
    """A budget's clock when there is no Lambda context: `seconds` from now."""
    deadline = time.monotonic() + seconds
    return lambda: deadline - time.monotonic()
