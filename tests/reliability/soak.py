"""1,000 events as a warm Lambda container would see them, generated from a seed.

About half of them name new packets (some 500 packets in all); the rest are what a
busy function also gets: duplicate invokes and retries of events already done, and
empty events. Small packets of every consumed table, in the order an ingestion would write them
(timestamps only move forward), with updates of rows already sent, bad rows now and
then (a line that is not JSON, a negative units_sold, an email without '@', a currency
code that is not one, an exact duplicate), duplicate invokes of earlier events, events
that skip a packet id (the packet in between exists and is caught up, or does not exist
and is passed over), two packets of one table in one event, and empty events.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tests.support.harness import address, counterparty, currency, department, design, sales_order, staff

CODES = ("GBP", "USD", "EUR", "JPY", "CHF")
CITIES = ("Leeds", "York", "Hull", "Bath", "Ely", "Derby")
NAMES = ("Wooden", "Steel", "Bronze", "Granite", "Cotton", "Soft", "Plastic")
TABLE_WEIGHTS = {"sales_order": 35, "design": 14, "staff": 12, "address": 10, "counterparty": 10,
                 "department": 9, "currency": 10}
T_START = datetime(2023, 1, 1)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = 0
        self.next_id = {t: 1 for t in TABLE_WEIGHTS}
        self.packets: dict[tuple[str, int], list] = {}
        self.events: list[dict] = []
        self.order_ids: list[int] = []

    def ts(self) -> str:
        self.clock += 1
        return (T_START + timedelta(seconds=self.clock * 37, microseconds=self.clock % 1000 * 1000)).isoformat()

    def table(self) -> str:
        return self.rng.choices(list(TABLE_WEIGHTS), weights=list(TABLE_WEIGHTS.values()))[0]

    def rows(self, table: str) -> list:
        r = self.rng
        n = r.randint(1, 4 if table == "sales_order" else 3)
        out = []
        for _ in range(n):
            u = self.ts()
            if table == "currency":
                i = r.randint(1, len(CODES))
                out.append(currency(i, CODES[i - 1], updated=u))
            elif table == "design":
                out.append(design(r.randint(1, 30), r.choice(NAMES), updated=u))
            elif table == "address":
                out.append(address(r.randint(1, 12), city=r.choice(CITIES), updated=u))
            elif table == "department":
                out.append(department(r.randint(1, 7), r.choice(("Sales", "Finance", "Dispatch")),
                                      r.choice(CITIES), updated=u))
            elif table == "counterparty":
                out.append(counterparty(r.randint(1, 10), r.randint(1, 12), f"Firm {r.randint(1, 99)}", updated=u))
            elif table == "staff":
                out.append(staff(r.randint(1, 20), r.randint(1, 7), r.choice(("Ann", "Bo", "Cy")),
                                 r.choice(("Lee", "Ng", "Roe")), updated=u))
            else:
                if self.order_ids and r.random() < 0.3:
                    order = r.choice(self.order_ids)  # a new version of an order
                else:
                    order = len(self.order_ids) + 1
                    self.order_ids.append(order)
                out.append(sales_order(order, updated=u, staff_id=r.randint(1, 20), counterparty_id=r.randint(1, 10),
                                       currency_id=r.randint(1, len(CODES)), design_id=r.randint(1, 30),
                                       agreed_delivery_location_id=r.randint(1, 12), units_sold=r.randint(1, 900),
                                       unit_price=round(r.uniform(1, 9), 2)))
        if r.random() < 0.12:
            out.append(self.bad_row(table, out[0]))
        return out

    def bad_row(self, table: str, good: dict):
        kind = self.rng.randrange(3)
        if kind == 0:
            return '{"truncated": '
        if kind == 1:
            return dict(good)  # an exact duplicate
        bad = dict(good, last_updated=self.ts())
        if table == "sales_order":
            bad["units_sold"] = -5
        elif table == "staff":
            bad["email_address"] = "no-at-sign"
        elif table == "currency":
            bad["currency_code"] = "gb1"
        else:
            return "not json at all"
        return bad

    def new_packet(self, table: str, upload: bool = True) -> str:
        k = self.next_id[table]
        self.next_id[table] += 1
        if upload:
            self.packets[(table, k)] = self.rows(table)
        return f"{table}:{k}"

    def add(self, packets: list[str]) -> None:
        self.events.append({"packets": [{"table": p.split(":")[0], "id": int(p.split(":")[1])} for p in packets]})

    def one(self) -> None:
        r = self.rng.random()
        if r < 0.25 or not self.events:
            self.add([self.new_packet(self.table())])
        elif r < 0.29:
            tables = self.rng.sample(list(TABLE_WEIGHTS), self.rng.randint(2, 3))
            self.add([self.new_packet(t) for t in tables])
        elif r < 0.74:
            self.events.append(self.rng.choice(self.events[-30:]))  # a duplicate invoke
        elif r < 0.78:
            t = self.table()
            self.new_packet(t, upload=self.rng.random() < 0.5)  # caught up, or missing: passed over
            self.add([self.new_packet(t)])
        elif r < 0.80:
            t = self.table()
            self.add([self.new_packet(t), self.new_packet(t)])
        elif r < 0.85:
            self.add([self.new_packet(self.table())])
        elif r < 0.97:
            self.events.append({"packets": []})
        else:
            self.add([self.new_packet("sales_order")])


def soak_events(count: int = 1000, seed: int = 20241114) -> tuple[list[dict], dict[tuple[str, int], list]]:
    """`count` events and the ingestion packets they name."""
    gen = _Gen(seed)
    while len(gen.events) < count:
        gen.one()
    return gen.events, gen.packets
