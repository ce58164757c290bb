"""A packet processed in tiny blocks gives exactly what processing it whole gives."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from runtime.parquet import from_parquet
from runtime.reading import parse_block, read_blocks
from runtime.tables import SOURCES
from runtime.transform import transform
from tests.support.harness import encode_lines, sales_order
from tests.unit.test_star import ALL_DIMENSIONS, states_with

SALES = SOURCES["sales_order"]


def packet_rows():
    rows = []
    for i in range(1, 120):
        rows.append(sales_order(i, units_sold=i, staff_id=1 if i % 17 else 99))  # some unknown staff
        if i % 10 == 0:
            rows.append(sales_order(i, updated="2023-03-01T00:00:00", units_sold=i + 1))  # a new version
        if i % 13 == 0:
            rows.append("{broken")
    rows.append(sales_order(5, units_sold=5, staff_id=1))  # exact duplicate, far from its first
    rows.append(sales_order(6, units_sold=999))  # same version as order 6, other content
    rows.append(sales_order(7, units_sold=7, staff_id=1))  # duplicate again
    return rows


def run(block_bytes, objects):
    blocks = read_blocks(((k, io.BytesIO(b)) for k, b in objects), block_bytes)
    return transform(SALES, (parse_block(SALES, b) for b in blocks), states_with(**ALL_DIMENSIONS), "sales_order:1")


@pytest.mark.parametrize("block_bytes", [1, 300, 4096])
def test_blocks_give_the_same_rows_quarantine_and_report_as_the_whole(block_bytes):
    body = encode_lines(packet_rows())
    half = body.index(b"\n", len(body) // 2) + 1
    objects = [("a.jsonl", body[:half]), ("b.jsonl", body[half:])]
    whole, streamed = run(1 << 30, objects), run(block_bytes, objects)

    assert [o.table for o in streamed.outputs] == ["dim_date", "fact_sales_order"]
    for a, b in zip(whole.outputs, streamed.outputs):
        assert from_parquet(a.body).to_pylist() == from_parquet(b.body).to_pylist()
        assert (a.table, a.rows, a.updated) == (b.table, b.rows, b.updated)
    assert whole.quarantine == streamed.quarantine
    assert [r.to_log() for r in whole.reports] == [r.to_log() for r in streamed.reports]
    facts = [r for r in streamed.reports if r.table == "fact_sales_order"][0]
    assert (facts.rows_skipped, facts.rows_rejected) == (2, 7 + 9 + 1)  # 2 duplicates; 7 unknown staff, 9 broken, 1 conflict


def test_blocks_become_row_groups():
    body = encode_lines(packet_rows())
    result = run(2048, [("a.jsonl", body)])
    fact = [o for o in result.outputs if o.table == "fact_sales_order"][0]
    assert pq.ParquetFile(io.BytesIO(fact.body)).num_row_groups > 5
