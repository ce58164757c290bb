"""dim_staff: staff joined with their department's name and location."""

from __future__ import annotations

import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc

from runtime.star.schema import table_schema
from runtime.validation import LINE, UPDATED

SCHEMA = table_schema(
    "dim_staff",
    {"email_address": (pdv.Check.str_matches(r"^[^@\s]+@[^@\s]+$", error="an email address"),)},
)


def build(staff: pa.Table, departments: pa.Table) -> pa.Table:
    """Staff rows (each with a known department) → dim_staff candidates.

    `__line` is the staff row's line when it came in this packet, else the
    department's (a department change re-emits its staff from the state).
    """
    dept = departments.select(["department_id", "department_name", "location", "last_updated", LINE])
    dept = dept.rename_columns(["department_id", "department_name", "location", "dept_updated", "dept_line"])
    joined = staff.join(dept, "department_id", join_type="left outer")
    joined = joined.sort_by("staff_id")
    return pa.table(
        {
            **{name: joined[name] for name in SCHEMA.columns},
            LINE: pc.coalesce(joined[LINE], joined["dept_line"]),
            UPDATED: pc.max_element_wise(joined["last_updated"], joined["dept_updated"]),
        }
    )
