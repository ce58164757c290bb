import pytest

from runtime.errors import InvalidEventError
from runtime.events import MAX_PACKET_ID, MAX_PACKETS, PacketRef, parse_event


def test_packets_come_back_in_dependency_order():
    event = parse_event(
        {"packets": [
            {"table": "payment", "id": 4},
            {"table": "sales_order", "id": 12},
            {"table": "transaction", "id": 2},
            {"table": "staff", "id": 3},
            {"table": "currency", "id": 1},
        ]}
    )
    assert event.packets == (
        PacketRef("currency", 1), PacketRef("staff", 3), PacketRef("transaction", 2),
        PacketRef("sales_order", 12), PacketRef("payment", 4),
    )


def test_an_empty_packet_list_is_valid():
    assert parse_event({"packets": []}).packets == ()


@pytest.mark.parametrize(
    "event, says",
    [
        ([{"table": "staff", "id": 1}], "must be a JSON object"),
        ("packets", "must be a JSON object"),
        (None, "must be a JSON object"),
        ({}, "no 'packets' key"),
        ({"packets": [], "extra": 1}, "unexpected key 'extra'"),
        ({"packets": {"table": "staff", "id": 1}}, "'packets' must be a list"),
        ({"packets": ["staff:1"]}, "packets[0] must be an object"),
        ({"packets": [{"id": 1}]}, "packets[0] has no 'table'"),
        ({"packets": [{"table": "staff"}]}, "packets[0] has no 'id'"),
        ({"packets": [{"table": "staff", "id": 1, "bucket": "x"}]}, "unexpected key 'bucket'"),
        ({"packets": [{"table": "staff", "id": 0}]}, "between 1 and"),
        ({"packets": [{"table": "staff", "id": -3}]}, "between 1 and"),
        ({"packets": [{"table": "staff", "id": True}]}, "got bool"),
        ({"packets": [{"table": "staff", "id": "3"}]}, "got str"),
        ({"packets": [{"table": "staff", "id": 3.0}]}, "got float"),
        ({"packets": [{"table": "staff", "id": MAX_PACKET_ID + 1}]}, "between 1 and"),
        ({"packets": [{"table": 7, "id": 3}]}, "must be a string"),
        ({"packets": [{"table": "staf", "id": 3}]}, "'staf' is not a known totesys table"),
        ({"packets": [{"table": "../staff", "id": 3}]}, "not a known totesys table"),
        ({"packets": [{"table": "staff", "id": 3}, {"table": "staff", "id": 3}]}, "staff:3 is named more than once"),
        ({"packets": [{"table": "staff", "id": i} for i in range(1, MAX_PACKETS + 2)]}, "more than 1000"),
    ],
)
def test_a_malformed_event_is_rejected_naming_the_problem(event, says):
    with pytest.raises(InvalidEventError) as error:
        parse_event(event)
    assert says in str(error.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(InvalidEventError) as error:
        parse_event({"packets": [{"table": "nope", "id": 1}, {"table": "staff", "id": 0}]})
    assert "packets[0].table" in str(error.value) and "packets[1].id" in str(error.value)
