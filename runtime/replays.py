"""Replaying waiting facts (docs/design.md#waits-and-replays).

A fact quarantined for want of a dimension key waits (runtime.waits) and is offered
again when a dimension packet emits a key a live waiting fact needs, or when an
operator asks. A replay is one more pending record and commits with the same steps as
a packet (runtime.pipeline), under its own commit record, so one killed anywhere and
run again writes every row exactly once.

What it produces is what processing in order would have produced had the key been
there from the start, with one rule on top: the warehouse never receives content older
than it holds for a version. So the waiting rows are offered oldest source packet
first, each packet's rows as a packet of their own against the fact memory and what
the replay wrote before them (runtime.history.Versions): a row whose version a later
packet already wrote or re-sent is superseded (skipped, with the packet that
superseded it); an older waiting row of the same version is written first and the
newer is then a re-send or the change, reported once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from itertools import groupby
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from runtime import keys
from runtime.history import FactMemory
from runtime.observability import logger
from runtime.pending import REPLAY
from runtime.ports import ProcessedStore
from runtime.reading import parse_block, read_blocks
from runtime.records import CommitRecord, CommitSpace, Computed, PacketOutcome
from runtime.star import ARROW_SCHEMAS
from runtime.tables import FACTS, SOURCES, WAITED_FOR
from runtime.transform import Transformed, replay_facts
from runtime.validation import LINE_NUMBER, OBJECT, WAITS_FOR
from runtime.waits import FIRST, PACKET, REPLAYED_TABLES, Wait, WaitWatch, live_quarantine, waits_in

__all__ = ["REPLAYED_TABLES", "Committer", "facts_waiting_for", "live_quarantine", "run_replay"]


class Committer(Protocol):
    """What a replay needs of the pipeline that runs it (runtime.pipeline.Pipeline):
    its commit steps and committed state. A Protocol, so this module imports no caller."""

    store: ProcessedStore

    def commit(self, space: CommitSpace, compute: Callable[[], Computed]) -> tuple[CommitRecord, PacketOutcome]: ...

    def inputs(self, *tables: str) -> tuple[dict[str, pa.Table], dict[str, pa.Array]]: ...

    def memory(self, table: str) -> FactMemory: ...


def run_replay(p: Committer, replay: str, watch: WaitWatch | None = None) -> PacketOutcome:
    """Offer the waiting facts again, against today's dimensions.

    Takes every live quarantine file of every fact (not taken by an earlier replay),
    offers their waiting rows by source packet through the same fact path as a packet,
    writes the facts that now pass as new output packets (one dim_date for all), and
    quarantines the rows still waiting (or now rejected for a reason of their own), with
    where they came from, in one file per fact of this replay.
    """
    name = f"replay:{replay}"
    offered_rows: list[Wait] = []

    def compute() -> Computed:
        taken = live_quarantine(p.store, replay)
        waits = waits_in(p.store, taken)
        offered_rows.extend(waits)
        # The rows' own objects are long read: the quarantine files bound them instead.
        written = max((p.store.last_modified(k) for k in taken), default=None)
        parts, offered = {}, {}
        for fact in FACTS:
            parts[fact.source] = [
                (packet, _offer(SOURCES[fact.source], fact.name, packet, list(group), written, offered))
                for packet, group in groupby((w for w in waits if w.table == fact.name), key=lambda w: w.packet)
            ]
        states, known = p.inputs(*parts)
        result = replay_facts(parts, states, name, {f.source: p.memory(f.source) for f in FACTS}, known)
        result = replace(result, quarantine={t: _with_origins(body, offered) for t, body in result.quarantine.items()})
        return Computed(CommitRecord(REPLAY, 0, replayed=tuple(taken)), result)

    space = CommitSpace(
        name, keys.replay_commit_key(replay), lambda output_table: keys.replay_quarantine_key(output_table, replay),
        earlier_record_keys=keys.earlier_replay_commit_keys(replay),
    )
    record, outcome = p.commit(space, compute)
    if outcome.status == "recovered":
        return outcome
    logger.info(
        "waiting facts replayed",
        extra={"replay": name, "files": list(record.replayed or ()), "rows_offered": len(offered_rows),
               "rows_written": {o.table: o.rows for o in record.outputs}},
    )
    if watch is not None:
        watch.report(waits_in(p.store, [q.key for q in record.quarantine]))
    return outcome


def _offer(source, fact: str, packet: int, waits: list[Wait], written, offered: dict):
    """The waiting rows of one source packet, as one object of that packet's source
    rows; `offered` maps each line back to the wait it is."""
    key = f"{keys.quarantine_prefix(fact)}offered_packet_{packet}"
    lines = []
    for number, wait in enumerate(waits, start=1):
        offered[(key, number)] = wait
        lines.append(wait.text)
    body = b"\n".join(lines) + b"\n"
    return (parse_block(source, block, written) for block in read_blocks([(key, io.BytesIO(body))]))


def _with_origins(body: bytes, offered: dict) -> bytes:
    """A replay's quarantine lines, each naming where its row came from (not the line it
    was offered as) and, when it still waits, the file it started waiting in."""
    out = []
    for line in body.splitlines():
        row = json.loads(line)
        wait = offered.get((row.get(OBJECT), row.get(LINE_NUMBER)))
        if wait is not None:
            tail = {k: row.pop(k) for k in ("_reasons", WAITS_FOR) if k in row}
            row[OBJECT], row[LINE_NUMBER], row[PACKET] = wait.origin, wait.line, wait.packet
            if WAITS_FOR in tail:
                row[FIRST] = wait.first
            row |= tail
        out.append(json.dumps(row, ensure_ascii=False, allow_nan=False).encode())
    return b"\n".join(out) + b"\n" if out else b""


def facts_waiting_for(store: ProcessedStore, result: Transformed, watch: WaitWatch | None = None) -> bool:
    """Whether a live waiting fact needs a dimension key this packet emits.

    Only then is a replay worth it: facts waiting for a key that never comes are
    not re-offered at every dimension packet. The waits listed here are also the ones
    `watch` reports when they are overdue.
    """
    emitted = set()
    for out in result.outputs:
        if out.table in WAITED_FOR:
            key = pq.read_table(io.BytesIO(out.body), columns=[ARROW_SCHEMAS[out.table].names[0]])
            emitted |= {(WAITED_FOR[out.table], k) for k in key.column(0).to_pylist()}
    if not emitted:
        return False
    waits = waits_in(store, live_quarantine(store))
    if watch is not None:
        watch.report(waits)
    return any((dimension, key) in emitted for w in waits for dimension, key in w.waits_for.items())
