"""docs/design.md#ordering under failure, over the Purchases and Payments stars: the process is killed
after every single write of events that carry payment_type, transaction, purchase_order
and payment packets; another event is processed before the retry, and the end state must
be byte for byte what an undisturbed run produces."""

from __future__ import annotations

from collections import Counter

import pytest

from runtime import keys
from tests.support.backends import MemoryBackend
from tests.support.harness import payment, payment_type, purchase_order, staff, transaction
from tests.support.kill_sweep import Arrive, Invoke, KillSweep, Scenario, dimensions
from tests.support.sweep import SAMPLE

PAID_AT = "2022-11-04T09:10:11.123000"

FIRST = dimensions(
    staff=[staff(1, 1), staff(2, 1, "Deron", "Beier")],
    payment_type=[payment_type(1), payment_type(2, "PURCHASE_PAYMENT")],
    transaction=[transaction(1, "SALE", 1, None), transaction(2, "PURCHASE", None, 1)],
)
SEED = (
    FIRST,
    Arrive((
        ("purchase_order", 1, [purchase_order(1), purchase_order(2, staff_id=2)]),
        # Payment 3 names transaction 3, which arrives in the third event: it waits.
        ("payment", 1, [
            payment(1, transaction_id=1),
            payment(2, transaction_id=2, payment_type_id=2, payment_date="2022-11-09"),
            payment(3, transaction_id=3, payment_date="2022-11-10"),
        ]),
        # Payment 1 is paid: a second version. Payment 2 is re-sent as it was: skipped.
        ("payment", 2, [
            payment(1, updated=PAID_AT, transaction_id=1, paid=True),
            payment(2, transaction_id=2, payment_type_id=2, payment_date="2022-11-09"),
        ]),
        ("purchase_order", 2, [purchase_order(3, staff_id=2, agreed_delivery_date="2022-11-12")]),
        ("transaction", 2, [transaction(3, "SALE", 2, None)]),
    )),
)
EVENTS = (
    Invoke((*(f"{table}:1" for table, _, _ in FIRST.packets), "purchase_order:1", "payment:1")),
    Invoke(("payment:2", "purchase_order:2")),
    Invoke(("transaction:2",)),
)
# Killed in any event; before Lambda's retry the next event arrives (or, after the last
# one, a duplicate invoke of the first): it must finish the killed invocation's packets first.
SWEEP = KillSweep(Scenario(SEED, EVENTS, sample=SAMPLE), MemoryBackend())


@pytest.fixture(scope="module")
def reference():
    return SWEEP.reference.world


def test_the_undisturbed_run_is_what_the_semantics_say(reference):
    h = reference
    versions = Counter((r["payment_id"], r["paid"]) for r in h.rows("fact_payment"))
    # Payments 1 and 2 unpaid, 1 again paid, 3 written by the replay; the re-send of 2 skipped.
    assert versions == {(1, False): 1, (2, False): 1, (1, True): 1, (3, False): 1}
    assert [r["payment_id"] for r in h.rows("fact_payment")] == [1, 2, 1, 3]
    assert h.output_numbers("fact_payment") == [1, 2, 3]
    assert [r["purchase_order_id"] for r in h.rows("fact_purchase_order")] == [1, 2, 3]
    assert h.output_numbers("fact_purchase_order") == [1, 2]
    assert [r["payment_id"] for r in h.quarantine("fact_payment", "payment:1")] == [3]
    assert h.processed.list_keys(keys.REPLAY_COMMITS) == [keys.replay_commit_key("after_transaction_packet_2")]
    assert sorted(r["transaction_id"] for r in h.rows("dim_transaction")) == [1, 2, 3]
    assert sorted(r["payment_type_id"] for r in h.rows("dim_payment_type")) == [1, 2]
    # dim_date: a packet beside every fact packet written (purchase_order:1, payment:1,
    # purchase_order:2, payment:2, the replay), one gapless sequence, each packet holding
    # exactly the dates its facts refer to.
    assert h.output_numbers("dim_date") == [1, 2, 3, 4, 5]
    by_packet = [sorted(str(d) for d in h.table("dim_date", n)["date_id"].to_pylist()) for n in range(1, 6)]
    assert by_packet == [
        ["2022-11-03", "2022-11-07", "2022-11-09"],
        ["2022-11-03", "2022-11-07", "2022-11-09"],
        ["2022-11-03", "2022-11-07", "2022-11-12"],
        ["2022-11-03", "2022-11-04", "2022-11-07"],
        ["2022-11-03", "2022-11-10"],
    ]
    assert h.consumed("payment") == 2 and h.consumed("transaction") == 2 and h.consumed("purchase_order") == 2


@pytest.mark.parametrize("point", SWEEP.points(), ids=str)
def test_killed_after_any_write_then_another_event_then_the_retry(point):
    SWEEP.check(point)
