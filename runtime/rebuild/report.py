"""The rebuild's report: what it wrote, rejected and passed over, and the versions
where it may hold a history row a live run would not (docs/design.md#rebuild).

A rebuild sees every dimension key from the start, so a fact row that a live run kept
waiting, and then resolved as superseded by a later packet's row of the same version
(docs/design.md#waits-and-replays), is a history row here. That can only be a version
written again with other content (a silent mutation): those are listed, per fact.
"""

from __future__ import annotations

import json

from runtime import keys
from runtime.records import CommitRecord
from runtime.ports import ProcessedStore
from runtime.rebuild.commit import MUTATED
from runtime.rebuild.plan import REBUILD, Plan

REPORT_KEY = f"{REBUILD}report.json"


def write_report(store: ProcessedStore, plan: Plan) -> dict:
    written: dict[str, dict[str, int]] = {}
    rejected: dict[str, int] = {}
    passed_over = []
    for key in store.list_keys(keys.COMMITS):
        record = CommitRecord.from_json(key, store.read(key) or b"")
        if record.missing:
            passed_over.append(f"{record.table}:{record.packet}")
        for out in record.outputs:
            table = written.setdefault(out.table, {"packets": 0, "rows": 0})
            table["packets"] += 1
            table["rows"] += out.rows
        for q in record.quarantine:
            rejected[q.table] = rejected.get(q.table, 0) + q.rows
    history_rows: dict[str, list[int]] = {}
    for key in store.list_keys(MUTATED):
        note = json.loads(store.read(key) or b"{}")
        history_rows.setdefault(note["table"], []).extend(note["ids"])
    report = {
        "source_packets": {t: len(ids) for t, ids in sorted(plan.packets.items())},
        "written": dict(sorted(written.items())),
        "quarantined_lines": dict(sorted(rejected.items())),
        "passed_over": sorted(passed_over),
        # Versions written again with other content: where a live run may have
        # resolved the earlier row as superseded while it waited.
        "history_rows_a_live_run_may_not_hold": {t: sorted(set(ids)) for t, ids in sorted(history_rows.items())},
    }
    store.put_if_absent(REPORT_KEY, json.dumps(report, indent=1).encode(), {})
    return report
