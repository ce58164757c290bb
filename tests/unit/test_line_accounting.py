"""The line rule (docs/design.md#line-screen): every line has exactly one fate, so
lines = written + rejected + skipped + blank. Checked in one place, the report's
module (runtime.validation.check_lines); the reading and the sinks pass it their counts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runtime.errors import LineAccountingError
from runtime.validation import TableReport, check_lines

ROOT = Path(__file__).resolve().parents[2]


def test_a_report_whose_counts_do_not_add_up_is_refused_naming_every_count():
    with pytest.raises(LineAccountingError) as refused:
        TableReport("dim_staff", "staff:3", rows_in=6, rows_written=4, rows_rejected=1, rows_skipped=1,
                    lines=8, blank=1)
    assert str(refused.value) == "dim_staff from staff:3: 8 lines but 4 written + 1 rejected + 1 skipped + 1 blank"


def test_a_report_whose_counts_add_up_is_kept_and_logs_them():
    report = TableReport("dim_staff", "staff:3", rows_in=6, rows_written=4, rows_rejected=1, rows_skipped=1,
                         lines=7, blank=1)
    assert report.to_log()["lines"] == 7 and report.to_log()["lines_blank"] == 1
    # A report that accounts no source lines (a re-emitted table, dim_date) is not checked.
    TableReport("dim_date", "sales_order:3", rows_in=2, rows_written=2, rows_rejected=0)


def test_the_reading_counts_pass_through_the_same_check():
    check_lines("k.jsonl from line 1", 3, 1, rows=1, broken=1)
    with pytest.raises(LineAccountingError, match=r"^k.jsonl from line 1: 3 lines but 1 rows \+ 0 broken \+ 1 blank$"):
        check_lines("k.jsonl from line 1", 3, 1, rows=1, broken=0)


def test_the_line_rule_is_raised_from_one_module_only():
    raising = set()
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if getattr(call, "id", None) == "LineAccountingError":
                    raising.add(path.relative_to(ROOT).as_posix())
    assert raising == {"runtime/validation.py"}
