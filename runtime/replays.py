"""Replaying quarantined facts (DESIGN §6, the replay extension).

A fact quarantined for want of a dimension row is offered again, against today's
dimensions, when an operator asks or when a dimension packet emits a key a live
quarantined fact waits for. A replay is one more pending record and commits with the
same steps as a packet (runtime.pipeline), under its own commit record, so one killed
anywhere and run again writes every row exactly once.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from runtime import keys
from runtime.errors import CorruptRecordError
from runtime.observability import logger
from runtime.pending import REPLAY
from runtime.ports import ProcessedStore
from runtime.reading import parse_block, read_blocks
from runtime.records import CommitRecord, PacketOutcome
from runtime.star import ARROW_SCHEMAS
from runtime.tables import FACTS, SOURCES, STATE_INPUTS, WAITED_FOR
from runtime.transform import Transformed, replay_facts
from runtime.validation import WAITS_FOR

if TYPE_CHECKING:
    from runtime.pipeline import Pipeline

# The outputs whose quarantined rows a replay offers again: every fact (runtime/tables.py).
REPLAYED_TABLES: tuple[str, ...] = tuple(f.name for f in FACTS)


def run_replay(p: Pipeline, replay: str) -> PacketOutcome:
    """Offer the quarantined facts again, against today's dimensions.

    Takes every live quarantine file of every fact (not taken by an earlier
    replay), feeds each fact's rows through the same fact path as a packet of its
    source, writes the facts that now pass as new output packets (one dim_date for
    all), and quarantines the rest again, with their new reasons, in one file per
    fact of this replay. Same commit steps as a packet, so a
    replay killed anywhere and run again writes every row exactly once.
    """
    name = f"replay:{replay}"
    commit_key = keys.replay_commit_key(replay)
    existing = p._store.read(commit_key)
    if existing is not None:
        record = CommitRecord.from_json(commit_key, existing)
        p._apply(record)
        return PacketOutcome(name, "recovered", record.outputs, record.quarantine)
    taken = live_quarantine(p._store, replay)
    parts, state_inputs = {}, []
    # The rows' own objects are long read: the quarantine files bound them instead.
    written = max((p._store.last_modified(k) for k in taken), default=None)
    # Each file is re-offered as an object of its own, line for line (a line not
    # re-offered stays blank), so a row quarantined again names the file and line
    # it was taken from. Both formats: the source row's fields plus `_reasons`, or
    # `_raw` (the exact text); `_object`/`_line` (where it first came from) are
    # bookkeeping, not fields, and so are not re-offered.
    for fact in FACTS:  # each fact's quarantined rows, fed back as rows of its source
        objects = [
            (key, io.BytesIO(reoffered(p._store, key)))
            for key in taken
            if key.startswith(keys.quarantine_prefix(fact.name))
        ]
        parts[fact.source] = _parsed(SOURCES[fact.source], objects, written)
        state_inputs += STATE_INPUTS[fact.source]
    states = {t: p._load_state(t) for t in dict.fromkeys(state_inputs)}
    result = replay_facts(parts, states, name, {f.source: p._memory(f.source) for f in FACTS})
    record = p._write(
        name,
        CommitRecord(REPLAY, 0, replayed=tuple(taken)),
        result,
        lambda output_table: keys.replay_quarantine_key(output_table, replay),
        commit_key,
    )
    p._apply(record)
    logger.info(
        "quarantined facts replayed",
        extra={"replay": name, "files": taken, "rows_written": {o.table: o.rows for o in record.outputs}},
    )
    return p._count(name, record, result)


def reoffered(store: ProcessedStore, key: str) -> bytes:
    """A quarantine file's rejected lines as source lines again, line for line."""
    lines = []
    for line in (store.read(key) or b"").splitlines():
        try:
            row = json.loads(line)
            reasons = row.pop("_reasons", None)
        except (ValueError, AttributeError, RecursionError) as exc:
            raise CorruptRecordError(f"quarantine file {key} has a line that is not JSON: {exc}") from exc
        for bookkeeping in (WAITS_FOR, "_object", "_line", "_length"):
            row.pop(bookkeeping, None)
        if reasons is None:
            lines.append(b"")
        elif "_raw" in row:
            lines.append(row["_raw"].encode())
        else:
            lines.append(json.dumps(row, ensure_ascii=False).encode())
    return b"\n".join(lines) + b"\n" if lines else b""


def facts_waiting_for(store: ProcessedStore, result: Transformed) -> bool:
    """Whether a live quarantined fact waits for a dimension row this packet emits.

    Only then is a replay worth it: facts waiting for a key that never comes are
    not re-offered at every dimension packet. Reads rejected rows only.
    """
    emitted = set()
    for out in result.outputs:
        if out.table in WAITED_FOR:
            key = pq.read_table(io.BytesIO(out.body), columns=[ARROW_SCHEMAS[out.table].names[0]])
            emitted |= {(WAITED_FOR[out.table], k) for k in key.column(0).to_pylist()}
    if not emitted:
        return False
    marker = f'"{WAITS_FOR}"'.encode()
    for file_key in live_quarantine(store, None):
        for line in (store.read(file_key) or b"").splitlines():
            if marker in line:
                waits = json.loads(line)[WAITS_FOR]
                if any((dimension, key) in emitted for dimension, key in waits.items()):
                    return True
    return False


def live_quarantine(store: ProcessedStore, replay: str | None) -> list[str]:
    """Fact quarantine files no earlier replay has taken, in key order; never this
    replay's own (a killed attempt may have written it already)."""
    taken = set()
    for key in store.list_keys(keys.REPLAY_COMMITS):
        record = CommitRecord.from_json(key, store.read(key) or b"")
        taken.update(record.replayed or ())
    own = {keys.replay_quarantine_key(t, replay) for t in REPLAYED_TABLES} if replay else set()
    return [
        k
        for table in REPLAYED_TABLES
        for k in store.list_keys(keys.quarantine_prefix(table))
        if k not in taken and k not in own
    ]


def _parsed(source, objects, written):
    """Replayed rows as parsed blocks of `source`; `written` bounds their timestamps."""
    return (parse_block(source, b, written) for b in read_blocks(objects))
