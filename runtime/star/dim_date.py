"""dim_date: one row per date the facts of a packet refer to."""

from __future__ import annotations

import calendar
from datetime import datetime

import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

_SMALL = pa.int32()
SCHEMA = table_schema(
    "dim_date",
    {
        "month": (pdv.Check.in_range(1, 12),),
        "day": (pdv.Check.in_range(1, 31),),
        "day_of_week": (pdv.Check.in_range(1, 7),),
        "day_name": (pdv.Check.isin(list(calendar.day_name)),),
        "month_name": (pdv.Check.isin(list(calendar.month_name)[1:]),),
        "quarter": (pdv.Check.in_range(1, 4),),
    },
)

# English names by ISO weekday (1 = Monday) and month number; index 0 unused. Fixed
# here, not from the process locale, so the output never depends on the machine.
_DAY_NAMES = pa.array(["", *calendar.day_name])
_MONTH_NAMES = pa.array(list(calendar.month_name))


def referenced_dates(facts: pa.Table, date_columns: tuple[str, ...]) -> pa.Array:
    """The distinct dates a batch of fact rows refers to through `date_columns` (the
    fact's declared dates, runtime/tables.py)."""
    columns = [facts[c].combine_chunks() for c in date_columns]
    return pc.unique(pa.concat_arrays(columns)) if facts.num_rows else pa.array([], pa.date32())


def build(dates: pa.Array, updated: datetime) -> pa.Table:
    """Distinct dates → dim_date candidates; `updated` is the facts' latest last_updated."""
    dates = pc.drop_null(dates).sort()
    weekday = pc.day_of_week(dates, count_from_zero=False, week_start=1)
    month = pc.month(dates)
    n = len(dates)
    return pa.table(
        {
            "date_id": dates,
            "year": pc.cast(pc.year(dates), _SMALL),
            "month": pc.cast(month, _SMALL),
            "day": pc.cast(pc.day(dates), _SMALL),
            "day_of_week": pc.cast(weekday, _SMALL),
            "day_name": pc.take(_DAY_NAMES, weekday),
            "month_name": pc.take(_MONTH_NAMES, month),
            "quarter": pc.cast(pc.quarter(dates), _SMALL),
            # A date is derived from the facts, not from one source line.
            LINE: pa.nulls(n, pa.int64()),
            UPDATED: pa.repeat(pa.scalar(updated, pa.timestamp("us")), n),
        }
    )
