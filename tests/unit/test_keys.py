from datetime import datetime

import pytest

from runtime import keys


def test_packet_prefix_keeps_packet_1_from_matching_packet_10():
    assert keys.packet_prefix("sales_order", 1) == "sales_order/sales_order_packet_1_"
    assert not "sales_order/sales_order_packet_10_ingested_x.jsonl".startswith(keys.packet_prefix("sales_order", 1))


def test_output_key_follows_the_naming_convention():
    key = keys.output_key("dim_staff", 4, datetime(2022, 11, 3, 14, 20, 51, 563000))
    assert key == "dim_staff/dim_staff_packet_4_processed_20221103T142051.563000Z.parquet"


def test_processor_keys():
    assert keys.commit_key("staff", 7) == "_commits/staff/staff_packet_7.json"
    assert keys.state_key("staff", 7) == "_state/staff/staff_packet_7.parquet"
    assert keys.quarantine_key("dim_staff", "department", 2) == (
        "_quarantine/dim_staff/dim_staff_from_department_packet_2_rejected.jsonl"
    )
    assert keys.parse_pending_key(keys.pending_key(12)) == (12, False)
    assert keys.parse_pending_key(keys.pending_key(12, replay_after=True)) == (12, True)
    assert keys.pending_key(12) < keys.pending_key(12, replay_after=True) < keys.pending_key(13)
    assert keys.parse_pending_key("_pending/../x.json") is None


@pytest.mark.parametrize("table", ["../staff", "staff/../../x", "", "payments", "dim_staff"])
def test_no_key_is_built_for_an_undeclared_source_table(table):
    with pytest.raises(ValueError):
        keys.packet_prefix(table, 1)


@pytest.mark.parametrize("n", [0, -1, True, "1"])
def test_packet_numbers_must_be_positive_ints(n):
    with pytest.raises(ValueError):
        keys.output_key("dim_date", n, datetime(2024, 1, 1))


def test_objects_other_than_json_lines_are_not_packet_objects():
    assert keys.is_packet_object("a/a_packet_1_x.jsonl") and keys.is_packet_object("a/a_packet_1_x.jsonl.gz")
    assert not keys.is_packet_object("a/a_packet_1_x.json") and not keys.is_packet_object("a/a_packet_1_/")
