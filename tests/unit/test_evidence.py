"""Passing a packet over only on evidence in the bucket, named or not, at a bounded
number of LIST calls (docs/design.md#input-layout)."""

import json

import pytest

from runtime import keys
from runtime.errors import MissingPacketError
from runtime.late import evidence_calls_bound, later_packet_with_objects
from runtime.tables import consumed_parameter
from tests.support.fakes import MemoryBucket
from tests.support.harness import PREFIX, Harness, sales_order


class CountingBucket(MemoryBucket):
    """The ingestion bucket, counting the LIST calls made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = 0

    def list_keys(self, prefix: str) -> list[str]:
        # A full listing costs one call per page of 1,000 keys.
        found = super().list_keys(prefix)
        self.lists += max(1, -(-len(found) // 1000))
        return found

    def list_after(self, prefix: str, start_after: str, max_keys: int) -> list[str]:
        assert max_keys <= 1000  # one page: one call
        self.lists += 1
        return super().list_after(prefix, start_after, max_keys)


def _bucket(table: str, packets, objects_per_packet: int = 1) -> CountingBucket:
    bucket = CountingBucket()
    for n in packets:
        for part in range(objects_per_packet):
            bucket.put(f"{keys.packet_prefix(table, n)}ingested_20241114T153409.845000Z_{part}.jsonl", b"{}\n")
    return bucket


HISTORY = 5000  # packets 1..5000 in the bucket: a long history


@pytest.mark.parametrize(
    "present, missing, evidence",
    [
        # The next packet, after thousands: found in the first window.
        ([*range(1, HISTORY + 1), HISTORY + 2], HISTORY + 1, HISTORY + 2),
        # A later packet some hundreds ahead; shorter numbers sort among them.
        ([*range(1, HISTORY + 1), HISTORY + 700], HISTORY + 1, HISTORY + 700),
        # Across a digit length: 9999 missing, 10000 there (it sorts before 9999).
        ([*range(1, 9999), 10_000], 9999, 10_000),
        ([*range(1, 99), 100, 101], 99, 100),
        # Packet 10 missing: 11 sorts between 10's keys and 100's.
        ([*range(1, 10), *range(11, HISTORY)], 10, 11),
        # A gap low in a long history: evidence right after it.
        ([1, *range(3, HISTORY)], 2, 3),
        # Nothing later: no evidence, after a bounded number of calls.
        (range(1, HISTORY + 1), HISTORY + 1, None),
        (range(1, 10_000), 10_000, None),
    ],
)
def test_evidence_costs_a_bounded_number_of_list_calls_whatever_the_history(present, missing, evidence):
    bucket = _bucket("sales_order", present, objects_per_packet=2)
    found = later_packet_with_objects(bucket, {}, "sales_order", missing)
    if evidence is None:
        assert found is None
    else:  # any later packet with objects is evidence; the page's smallest is named
        assert found is not None and found > missing and found in set(present), found
        assert bucket.lists <= 2  # the nearest pages come first
    assert bucket.lists <= evidence_calls_bound(missing)


def test_a_run_of_missing_packets_costs_the_same_two_calls():
    bucket = _bucket("sales_order", [*range(1, HISTORY + 1), HISTORY + 50])
    found: dict[str, int] = {}
    for k in range(HISTORY + 1, HISTORY + 50):
        assert later_packet_with_objects(bucket, found, "sales_order", k) == HISTORY + 50
    assert bucket.lists == 1


def test_keys_that_are_not_packet_objects_are_no_evidence():
    bucket = _bucket("staff", range(1, 5))
    bucket.put("staff/staff_packet_6_notes.txt", b"x")  # not .jsonl
    bucket.put("staff/staff_packet_07_x.jsonl", b"{}\n")  # not how packets are numbered
    bucket.put("staff/staff_packet_8.jsonl", b"{}\n")  # no '_' after the number
    bucket.put("staff/staff_packet_\u0669_x.jsonl", b"{}\n")  # an Arabic-Indic nine
    assert later_packet_with_objects(bucket, {}, "staff", 5) is None


def test_a_later_packet_behind_hundreds_of_shorter_numbers_is_seen():
    """9000 sorts after the ~440 shorter numbers (501..899) that sort between it and
    5000 as text, three objects each: more than a page of keys, yet its own leading
    digit's page finds it."""
    bucket = _bucket("staff", [*range(1, 5000), 9000], objects_per_packet=3)
    assert later_packet_with_objects(bucket, {}, "staff", 5000) == 9000
    assert bucket.lists <= 6


def test_the_stated_limit_a_later_packet_behind_more_pages_than_lengths_left():
    """The bound's price: 9999 sorts after the 111 shorter numbers of its leading digit
    (9, 90..99, 900..999); at 70 objects each that is 7,770 keys, more than the seven
    pages a four-digit id reads per digit. The missing packet then fails retryably."""
    bucket = _bucket("staff", range(1, HISTORY + 1), objects_per_packet=70)
    bucket.put(f"{keys.packet_prefix('staff', 9999)}ingested_20241114T153409.845000Z.jsonl", b"{}\n")
    assert later_packet_with_objects(bucket, {}, "staff", HISTORY + 1) is None
    assert bucket.lists <= evidence_calls_bound(HISTORY + 1)


# -- in the pipeline ---------------------------------------------------------------


@pytest.fixture
def h():
    harness = Harness()
    harness.ingestion = CountingBucket()
    return harness


def test_an_event_naming_only_an_empty_packet_passes_it_over_on_a_later_packet_in_the_bucket(h):
    """The issue's case: 2 has no objects, 3 has, the event names only 2."""
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1)])
    h.invoke("sales_order:1")
    h.upload("sales_order", 3, [sales_order(3)])
    summary = h.invoke("sales_order:2")
    assert [(o.packet, o.status) for o in summary.outcomes] == [("sales_order:2", "passed_over")]
    assert h.consumed("sales_order") == 2
    assert json.loads(h.processed.read(keys.commit_key("sales_order", 2)))["missing"] is True
    # 3 is processed when named.
    summary = h.invoke("sales_order:3")
    assert [(o.packet, o.status) for o in summary.outcomes] == [("sales_order:3", "committed")]
    assert h.consumed("sales_order") == 3
    h.check_invariants()


def test_the_pipeline_finds_evidence_in_a_history_of_thousands_with_a_few_list_calls(h):
    h.invoke(*h.upload_dimensions())
    for n in range(1, HISTORY + 1):  # the history: never read again
        h.ingestion.put(f"{keys.packet_prefix('sales_order', n)}ingested_20241114T153409.845000Z.jsonl", b"{}\n")
    h.ids.values[consumed_parameter(PREFIX, "sales_order")] = HISTORY
    h.upload("sales_order", HISTORY + 2, [sales_order(2)])
    h.ingestion.lists = 0
    summary = h.invoke(f"sales_order:{HISTORY + 1}")
    assert [(o.packet, o.status) for o in summary.outcomes] == [(f"sales_order:{HISTORY + 1}", "passed_over")]
    # The packet's own listing, then one window after its keys.
    assert h.ingestion.lists == 2


def test_with_nothing_later_in_a_long_history_it_fails_retryably_after_a_few_list_calls(h):
    h.invoke(*h.upload_dimensions())
    for n in range(1, HISTORY + 1):
        h.ingestion.put(f"{keys.packet_prefix('sales_order', n)}ingested_20241114T153409.845000Z.jsonl", b"{}\n")
    h.ids.values[consumed_parameter(PREFIX, "sales_order")] = HISTORY
    h.ingestion.lists = 0
    with pytest.raises(MissingPacketError, match="no later packet of sales_order has objects"):
        h.invoke(f"sales_order:{HISTORY + 1}")
    # The packet's own listing, then a page per leading digit and length until each
    # digit's keys after where a later packet could sort are read.
    assert h.ingestion.lists == 1 + 13 <= 1 + evidence_calls_bound(HISTORY + 1)
    assert h.consumed("sales_order") == HISTORY


@pytest.mark.parametrize("later", [8001, 8500, 8999])
@pytest.mark.parametrize("objects_per_packet", [1, 5])
def test_the_only_later_packet_thousands_away_in_a_long_history_is_seen(later, objects_per_packet):
    """A 5,000-packet history, packet 5001 missing and the only later packet some 3,000
    numbers on: the hundreds of shorter numbers that sort between them as text do not
    hide it, and the look stays bounded (docs/design.md#input-layout)."""
    bucket = _bucket("staff", range(1, HISTORY + 1), objects_per_packet)
    bucket.put(f"{keys.packet_prefix('staff', later)}ingested_20241114T153409.845000Z.jsonl", b"{}\n")
    assert later_packet_with_objects(bucket, {}, "staff", HISTORY + 1) == later
    assert bucket.lists <= evidence_calls_bound(HISTORY + 1)
