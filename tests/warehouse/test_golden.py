"""The fixture run's outputs, as readable rows, against the golden files in
tests/data/golden/: one CSV per output table the runtime declares, every row of every
packet with its packet number `n` as the first column, sorted by n and then by every
column in table order (the key comes first in every table), with decimals, dates and
times as text; and summary.json with each table's packet and row counts.

When the full dump is larger than GOLDEN_LIMIT_BYTES (about 5 MB), facts keep every
SAMPLE_EVERY-th row of that order (the counts stay exact) and summary.json says so;
dimensions are always whole. Today the full dump fits.

The files change only by hand: `UPDATE_GOLDEN=1 pytest tests/warehouse/test_golden.py`
rewrites them from the run, never a normal test run; review the diff before committing.
"""

from __future__ import annotations

import difflib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from runtime.tables import OUTPUT_TABLES
from tests.warehouse import parquet_rows

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
GOLDEN_LIMIT_BYTES = 5_000_000
SAMPLE_EVERY = 10


def canonical(parts: list[pa.Table]) -> pa.Table:
    numbered = [part.add_column(0, "n", pa.repeat(pa.scalar(n, pa.int32()), part.num_rows))
                for n, part in enumerate(parts, start=1)]
    rows = pa.concat_tables(numbered) if numbered else pa.table({"n": pa.array([], pa.int32())})
    return rows.sort_by([(c, "ascending") for c in rows.column_names])


def to_csv(rows: pa.Table) -> str:
    out = io.BytesIO()
    # Strings quoted, NULL an unquoted empty field: '' and NULL stay apart.
    pacsv.write_csv(rows, out, pacsv.WriteOptions(quoting_style="needed"))
    return out.getvalue().decode()


def dump(store, limit: int = GOLDEN_LIMIT_BYTES) -> dict[str, str]:
    """file name → text of every golden file, from the bucket."""
    tables = {t: canonical(parquet_rows.packets(store, t)) for t in OUTPUT_TABLES}
    full = {t: to_csv(rows) for t, rows in tables.items()}
    sampled = sum(map(len, full.values())) > limit
    files, summary = {}, {}
    for table, rows in tables.items():
        if sampled and table.startswith("fact_"):
            files[f"{table}.csv"] = to_csv(rows.take(pa.array(range(0, rows.num_rows, SAMPLE_EVERY))))
            dumped = f"every {SAMPLE_EVERY}th row"
        else:
            files[f"{table}.csv"] = full[table]
            dumped = "every row"
        summary[table] = {"packets": int(pc.max(rows["n"]).as_py() or 0), "rows": rows.num_rows, "dumped": dumped}
    files["summary.json"] = json.dumps(summary, indent=2) + "\n"
    return files


def test_a_dump_over_the_limit_samples_the_facts_only(fixture_run):
    files = dump(fixture_run.store, limit=0)
    summary = json.loads(files["summary.json"])
    facts = files["fact_sales_order.csv"].splitlines()
    assert summary["fact_sales_order"] == {"packets": 4, "rows": 11175, "dumped": f"every {SAMPLE_EVERY}th row"}
    assert len(facts) == 1 + -(-11175 // SAMPLE_EVERY)
    assert summary["dim_design"]["dumped"] == "every row" and len(files["dim_design.csv"].splitlines()) == 1 + 472


def test_the_fixture_runs_outputs_match_the_golden_files(fixture_run):
    actual = dump(fixture_run.store)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for old in GOLDEN.glob("*"):
            if old.name != "README.md":
                old.unlink()
        for name, text in actual.items():
            (GOLDEN / name).write_text(text)
    stored = {p.name: p.read_text() for p in sorted(GOLDEN.glob("*")) if p.name != "README.md"}
    assert sorted(stored) == sorted(actual), "golden files differ in which tables they hold"
    for name, text in actual.items():
        if text != stored[name]:
            diff = difflib.unified_diff(stored[name].splitlines(), text.splitlines(),
                                        f"golden/{name}", "this run", lineterm="", n=1)
            shown = "\n".join(list(diff)[:40])
            raise AssertionError(f"{name} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{shown}")
