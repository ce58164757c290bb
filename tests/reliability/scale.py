"""How long the long property runs are: the example counts CI runs, times
RELIABILITY_SCALE (`make reliability RELIABILITY_SCALE=4` for a deeper run before a
release; CI keeps 1, its budget is 20 minutes for everything)."""

from __future__ import annotations

import os


def examples(ci_count: int) -> int:
    text = os.environ.get("RELIABILITY_SCALE", "1").strip()
    try:
        scale = float(text)
    except ValueError:
        raise ValueError(f"RELIABILITY_SCALE must be a number, not {ascii(text[:40])}") from None
    if not scale > 0:
        raise ValueError(f"RELIABILITY_SCALE must be above 0, not {ascii(text[:40])}")
    return max(1, round(ci_count * scale))
