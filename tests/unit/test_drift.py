"""Schema drift names every unknown column of a packet (docs/design.md#validation):
whatever its values' types, however they change from line to line, on however few
rows it appears."""

import json

import pytest

from runtime.drift import PacketDrift
from runtime.observability import logger
from runtime.reading import parse_objects
from runtime.tables import SOURCES
from tests.support.harness import Harness, encode_lines, sales_order

SALES = SOURCES["sales_order"]


def _lines():
    """Three unknown columns of different JSON types, each on few rows, one whose type
    changes from line to line, spread over two objects."""
    first = [
        sales_order(1, discount=10),
        sales_order(2, discount="ten"),  # the type changes: pyarrow cannot infer it
        sales_order(3),
        sales_order(4, channel={"web": True, "app": [1, "x"]}),  # once, an object
    ]
    second = [
        sales_order(5, discount=2.5),
        sales_order(6),
        sales_order(7, tags=["a", 1, None]),  # once, a list of mixed types
        sales_order(8, discount=None, tags=True),  # and then a bool
    ]
    return first, second


@pytest.mark.parametrize("block_bytes", [64, 400, 1 << 20])
def test_every_unknown_column_is_named_whatever_the_blocks(block_bytes):
    first, second = _lines()
    drift = PacketDrift(SALES)
    objects = [("a.jsonl", encode_lines(first)), ("b.jsonl", encode_lines(second))]
    packet = parse_objects(SALES, objects, block_bytes=block_bytes)
    drift.add(packet.unknown_columns, packet.failures)
    assert drift.to_log()["unknown_columns"] == ["channel", "discount", "tags"]
    assert packet.rows.num_rows == 8 and not packet.failures  # no row broken by them


@pytest.mark.parametrize("only", [["discount"], ["channel"], ["tags"]])
def test_a_column_on_a_single_line_among_many_is_named(only):
    rows = [sales_order(i) for i in range(1, 200)]
    values = {"discount": "ten", "channel": {"a": 1}, "tags": [1, "b"]}
    rows[137] = {**rows[137], **{name: values[name] for name in only}}
    rows[20] = {**rows[20], **{name: 3 for name in only}}  # and another type elsewhere
    packet = parse_objects(SALES, [("a.jsonl", encode_lines(rows))])
    assert set(packet.unknown_columns) == set(only)
    assert packet.rows.num_rows == 199


def test_the_packet_warning_names_all_three(caplog):
    h = Harness()
    h.upload_dimensions(1)
    h.invoke("currency:1", "design:1", "address:1", "department:1", "counterparty:1", "staff:1")
    first, second = _lines()
    h.upload("sales_order", 1, first, part="_a")
    h.upload("sales_order", 1, second, part="_b", gz=True)
    with caplog.at_level("WARNING", logger=logger.name):
        h.invoke("sales_order:1")
    [warning] = [r for r in caplog.records if "schema drift" in r.getMessage()]
    assert warning.unknown_columns == ["channel", "discount", "tags"]
    assert len(h.rows("fact_sales_order")) == 8
    assert sum(doc.get("SchemaDrift", 0) for doc in h.metrics() if doc["table"] == "sales_order") == 1
    json.dumps(warning.unknown_columns)
