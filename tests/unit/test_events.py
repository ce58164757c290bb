import decimal
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.errors import MESSAGE_LIMIT, InvalidEventError, UnreadableObjectError
from runtime.events import MAX_PACKET_ID, MAX_PACKETS, PacketRef, parse_event
from runtime.tables import SOURCES


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


def _refusal(event) -> str:
    """The message of the InvalidEventError `event` gets; bounded and ascii."""
    with pytest.raises(InvalidEventError) as error:
        parse_event(event)
    message = str(error.value)
    assert len(message) <= MESSAGE_LIMIT and message.isascii(), (len(message), message[:200])
    return message


BIG = 10**5000


@pytest.mark.parametrize(
    "event, says",
    [
        ({"packets": [{"table": "x" * 1_000_000, "id": 1}]}, "(1,000,000 characters) is not a known totesys table"),
        ({"packets": [{"table": "staff", "id": 1, "k" * 100_000: 1}]}, "(100,000 characters)"),
        ({"packets": [], "k" * 1_000_000: 1}, "unexpected key"),
        ({"packets": [{"table": "staff", "id": BIG}]}, "an integer of about 5,001 digits"),
        ({"packets": [{"table": "staff", "id": -BIG}]}, "an integer of about"),
        ({"packets": [{"table": "staff", "id": decimal.Decimal("1E400000000")}]}, "got a Decimal"),
        ({"packets": [{"table": "staff", "id": decimal.Decimal("NaN")}]}, "got a Decimal"),
        ({"packets": [{"table": "staff", "id": 1.5}]}, "got float 1.5"),
        ({"packets": [{"table": "staff", "id": math.nan}]}, "got float nan"),
        ({"packets": [{"table": "staff", "id": math.inf}]}, "got float inf"),
        ({"packets": [{"table": "staff", "id": True}]}, "got bool True"),
        ({"packets": [{"table": "st\u0430ff", "id": 1}]}, "'st\\u0430ff' is not a known totesys table"),
        ({"packets": [{"table": "staff\u200b", "id": 1}]}, "'staff\\u200b'"),
        ({"packets": [], decimal.Decimal("NaN"): 1, 3: 4, (1, 2): 5}, "unexpected key a Decimal"),
        ({"packets": [{"table": "x" * 1_000_000, "id": BIG}] * MAX_PACKETS}, "more problems"),
        ({"packets": [[[[[]]]]]}, "packets[0] must be an object, got a list"),
        ({"packets": "x" * 1_000_000}, "'packets' must be a list, got str"),
    ],
)
def test_any_event_gets_one_bounded_typed_ascii_refusal(event, says):
    assert says in _refusal(event)


def test_an_object_key_and_reason_are_quoted_bounded_and_in_ascii():
    error = UnreadableObjectError("sales_order/" + "\u0455" * 100_000 + ".jsonl", "r" * 100_000)
    message = str(error)
    assert len(message) <= MESSAGE_LIMIT and message.isascii() and "\\u0455" in message


# -- the fuzz: any event, json-decoded or a raw Python object ----------------------

LOOK_ALIKES = [name.replace("a", "\u0430").replace("e", "\u0435").replace("o", "\u043e") for name in SOURCES]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**6000), max_value=10**6000),
    st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(sorted(SOURCES)), st.sampled_from(LOOK_ALIKES),
    st.integers(1, 400_000).map(lambda n: "t" * n), st.binary(max_size=10), st.just(object()),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers(), st.sampled_from(["table", "id", "packets"])),
                        inner, max_size=4),
    ),
    max_leaves=12,
)
packet = st.one_of(
    st.fixed_dictionaries({"table": st.one_of(st.sampled_from(sorted(SOURCES)), scalars), "id": scalars}),
    st.fixed_dictionaries({"table": st.sampled_from(sorted(SOURCES)), "id": st.integers(1, 50)}),
    junk,
)
events = st.one_of(
    junk,
    st.fixed_dictionaries({"packets": st.lists(packet, max_size=6)}),
    st.fixed_dictionaries({"packets": st.lists(packet, max_size=3)}, optional={"extra": junk}),
)


def _json_round_trip(event):
    """The event as Lambda would hand it over, when it can be JSON at all."""
    try:
        return json.loads(json.dumps(event, allow_nan=True))
    except (TypeError, ValueError):
        return event


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events, st.booleans())
def test_fuzz_any_event_is_parsed_or_refused_with_a_bounded_message(event, as_json):
    event = _json_round_trip(event) if as_json else event
    try:
        parsed = parse_event(event)
    except InvalidEventError as error:
        message = str(error)
        assert len(message) <= MESSAGE_LIMIT and message.isascii(), (len(message), message[:200])
    else:
        assert all(p.table in SOURCES and type(p.id) is int and 1 <= p.id <= MAX_PACKET_ID for p in parsed.packets)


any_text = st.one_of(st.text(max_size=50), st.integers(1, 300_000).map(lambda n: "\u0455" * n),
                     st.sampled_from(LOOK_ALIKES))


@settings(max_examples=100, deadline=None)
@given(any_text, st.text(max_size=2000))
def test_fuzz_an_unreadable_object_is_named_bounded_and_in_ascii(key, reason):
    message = str(UnreadableObjectError(key, reason))
    assert len(message) <= MESSAGE_LIMIT and message.isascii()


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["INGESTION_BUCKET", "PROCESSED_BUCKET", "SSM_PREFIX", "LOG_LEVEL",
                                        "STOP_MARGIN_SECONDS"]), any_text))
def test_fuzz_any_configuration_is_accepted_or_refused_with_a_bounded_message(env):
    from runtime.errors import ConfigError
    from runtime.settings import Settings

    try:
        Settings.from_env(env)
    except ConfigError as error:
        message = str(error)
        assert len(message) <= MESSAGE_LIMIT and message.isascii(), message[:200]
