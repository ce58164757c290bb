"""The on-call commands' output for a person: short tables, the important line first.

`--json` prints the same data for scripts (runtime/operations.py); this module only
turns it into text.
"""

from __future__ import annotations

import json

from runtime.operations_args import shown


def status_text(report: dict, where: str, last_error: str | None) -> str:
    lines = [f"processing state of {where}"]
    blocking = report["blocking"]
    if blocking is None:
        lines.append("nothing pending: every packet named so far is processed")
    else:
        lines.append(f"BLOCKING: {blocking} is the next to run; everything pending waits behind it")
        if last_error:
            lines.append(f"  last error (newest dead-letter message): {last_error}")
    lines.append("")
    lines.append(f"{'source table':<22}{'consumed':>9}    {'output table':<22}{'produced':>9}")
    sources = list(report["consumed"].items())
    outputs = list(report["produced"].items())
    for i in range(max(len(sources), len(outputs))):
        left = f"{sources[i][0]:<22}{sources[i][1]:>9}" if i < len(sources) else " " * 31
        right = f"{outputs[i][0]:<22}{outputs[i][1]:>9}" if i < len(outputs) else ""
        lines.append(f"{left}    {right}".rstrip())
    lines.append("")
    lines.append(f"pending, in the order they will run ({len(report['pending'])}):")
    for entry in report["pending"]:
        what = ", ".join(entry["packets"]) or (
            f"late {entry['late']}" if "late" in entry else f"replay {entry.get('replay')}"
        )
        lines.append(f"  {entry['key']}  {what}")
    lines.append(f"open gaps (passed over, not processed late): {', '.join(report['open_gaps']) or 'none'}")
    waits = report["open_waits"]
    if waits:
        lines.append("open waits (facts waiting for a dimension key; replayed when it arrives):")
        for table, entry in waits.items():
            needs = "; ".join(f"{d} {_some(v)}" for d, v in entry["needs"].items())
            lines.append(f"  {table}: {entry['rows']} rows, need {needs} (waiting since {entry['oldest_since']})")
    else:
        lines.append("open waits: none")
    lines.append(f"open quarantine files: {len(report['quarantine_files'])} (`quarantine` shows them)")
    return "\n".join(lines)


def quarantine_text(summary: dict, waits: dict) -> str:
    if not summary:
        return "the quarantine is empty: no open file"
    lines = []
    for table, entry in summary.items():
        lines.append(f"{table}: {entry['rows']} rows in {entry['files']} open files, {entry['waiting']} waiting")
        for reason, count in list(entry["reasons"].items())[:10]:
            lines.append(f"  {count:>7}  {reason[:160]}")
        if table in waits:
            for dimension, needed in waits[table]["needs"].items():
                lines.append(f"  waiting for {dimension}: {_some(needed)}")
    return "\n".join(lines)


def rows_text(key: str, rows: list[dict]) -> str:
    lines = [f"{key}: {len(rows)} rows shown"]
    for row in rows:
        lines.append("  " + json.dumps(row, ensure_ascii=True)[:400])
    return "\n".join(lines)


def dlq_text(messages: list[dict]) -> str:
    if not messages:
        return "the dead-letter queue is empty"
    lines = [f"{len(messages)} messages in the dead-letter queue, oldest first:"]
    for m in messages:
        event = json.dumps(m["event"], ensure_ascii=True)[:300] if m["valid_event"] else (
            f"no valid event ({shown(json.dumps(m['event']))}): redrive leaves it"
        )
        lines.append(f"  {m['message_id']}  {m['condition'] or '?'} after {m['attempts'] or '?'} attempts")
        lines.append(f"    event: {event}")
        lines.append(f"    error: {(m['error'] or 'none recorded')[:300]}")
    return "\n".join(lines)


def _some(values: list[str], most: int = 10) -> str:
    head = ", ".join(values[:most])
    return head + (f" and {len(values) - most} more" if len(values) > most else "")
