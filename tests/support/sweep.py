"""Which kill points a kill sweep visits: all of them, or a fixed sample.

A kill sweep kills the run after each write, processes another event, retries and
compares with an undisturbed run. Every write is a kill point, and there are hundreds:
`make reliability` visits all of them (`KILL_SWEEP=full`); `make test`, the loop every
change waits on, visits a fixed sample that always holds the first and last write of
each step and writes spread evenly between, so a sweep that breaks at its edges or in
bulk still fails there, and the full sweep catches the rest before anything lands.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

FULL = os.environ.get("KILL_SWEEP", "").strip().lower() == "full"
# Points kept per sweep in `make test` (the full sweep has 30 to 100).
SAMPLE = 8


def kill_points(points: Sequence[T], *, sample: int = SAMPLE) -> list[T]:
    """All `points` under KILL_SWEEP=full; else the first, the last and evenly spaced ones."""
    points = list(points)
    if FULL or len(points) <= sample:
        return points
    step = (len(points) - 1) / (sample - 1)
    return [points[round(i * step)] for i in range(sample)]
