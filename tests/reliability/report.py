"""Figures the reliability tests measure, printed at the end of the run (conftest)."""

from __future__ import annotations

from collections import defaultdict

# kind -> column -> count
FAULTS: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
COLUMNS = ("call sites tried", "survived (SDK retries)", "failed typed, recovered", "rows lost", "rows duplicated",
           "of which before the pending mark")
NOTES: list[str] = []


def add(kind: str, **counts: int) -> None:
    for column, n in counts.items():
        FAULTS[kind][column] += n


def dump() -> dict:
    """This process's figures, for the process that prints them (pytest-xdist workers)."""
    return {"faults": {k: dict(v) for k, v in FAULTS.items()}, "notes": list(NOTES)}


def merge(figures: dict) -> None:
    """Add a worker's figures (from dump) to this process's."""
    for kind, counts in figures.get("faults", {}).items():
        add(kind, **counts)
    NOTES.extend(figures.get("notes", ()))


def lines() -> list[str]:
    out = []
    if FAULTS:
        width = max(len(k) for k in FAULTS) + 2
        out.append("fault kind".ljust(width) + " | ".join(COLUMNS))
        for kind, counts in FAULTS.items():
            cells = [str(counts.get(c, 0)).rjust(len(c)) for c in COLUMNS]
            out.append(kind.ljust(width) + " | ".join(cells))
    return out + NOTES
