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



def test_a_replay_commit_record_is_named_after_the_replay_not_one_fact():
    """One record covers all three facts; the name earlier versions used is still looked up."""
    assert keys.replay_commit_key(3) == "_commits/replay/replay_3.json"
    assert keys.replay_commit_keys("after_staff_packet_2") == (
        "_commits/replay/replay_after_staff_packet_2.json",
        "_commits/replay/fact_sales_order_replay_after_staff_packet_2.json",
    )
    assert all(k.startswith(keys.REPLAY_COMMITS) for k in keys.replay_commit_keys(3))

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


# -- the key's timestamp: four-digit years, UTC ----------------------------------

from datetime import timedelta, timezone  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEY_TS = "%Y%m%dT%H%M%S.%fZ"


def _ts_of(key: str) -> str:
    return key.rsplit("_processed_", 1)[1].removesuffix(".parquet")


def test_year_1_is_written_with_four_digits():
    key = keys.output_key("dim_date", 1, datetime(1, 1, 1))
    assert _ts_of(key) == "00010101T000000.000000Z"


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)))
def test_a_naive_time_is_utc_and_every_year_has_four_digits(updated):
    ts = _ts_of(keys.output_key("dim_date", 1, updated))
    assert len(ts) == len("00010101T000000.000000Z") and ts[:4] == f"{updated.year:04d}"
    assert datetime.strptime(ts, _KEY_TS) == updated


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
def test_an_offset_is_converted_to_utc_before_formatting(local, zone):
    aware = local.replace(tzinfo=zone)
    in_utc = (local - zone.utcoffset(None)).replace(tzinfo=None)
    assert _ts_of(keys.output_key("dim_date", 1, aware)) == _ts_of(keys.output_key("dim_date", 1, in_utc))


def test_offsets_and_z_give_the_same_key_as_naive_utc():
    naive = keys.output_key("dim_staff", 4, datetime(2022, 11, 3, 14, 20, 51, 563000))
    plus_one = datetime(2022, 11, 3, 15, 20, 51, 563000, tzinfo=timezone(timedelta(hours=1)))
    z = datetime(2022, 11, 3, 14, 20, 51, 563000, tzinfo=timezone.utc)
    assert keys.output_key("dim_staff", 4, plus_one) == keys.output_key("dim_staff", 4, z) == naive


def test_a_time_whose_utc_is_before_year_1_is_refused():
    with pytest.raises(ValueError, match="outside years"):
        keys.output_key("dim_date", 1, datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
