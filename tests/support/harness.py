"""Build source rows and drive the pipeline over in-memory ports, for unit tests."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from collections.abc import Mapping

import pyarrow as pa

from runtime import keys
from runtime.events import parse_event
from runtime.observability import Metrics
from runtime.parquet import from_parquet
from runtime.pipeline import CommitRecord, Pipeline, RunSummary
from runtime.tables import (
    OUTPUT_TABLES,
    consumed_parameter,
    packet_id_parameters,
    produced_parameter,
)
from tests.support.fakes import MemoryBucket, MemoryPacketIds, Writes

PREFIX = "/totesys/processing"
T0 = "2022-11-03T14:20:49.962000"


def currency(currency_id=1, code="GBP", updated=T0):
    return {"currency_id": currency_id, "currency_code": code, "created_at": T0, "last_updated": updated}


def design(design_id=1, name="Wooden", updated=T0):
    return {
        "design_id": design_id, "created_at": T0, "design_name": name, "file_location": "/usr",
        "file_name": f"{name.lower()}-20220717-npgz.json", "last_updated": updated,
    }


def address(address_id=1, city="New Patienceburgh", line_2=None, district="Avon", updated=T0):
    return {
        "address_id": address_id, "address_line_1": "6826 Herzog Via", "address_line_2": line_2,
        "district": district, "city": city, "postal_code": "28441", "country": "Turkey",
        "phone": "1803 637401", "created_at": T0, "last_updated": updated,
    }


def department(department_id=1, name="Sales", location="Manchester", updated=T0):
    return {
        "department_id": department_id, "department_name": name, "location": location,
        "manager": "Richard Roma", "created_at": T0, "last_updated": updated,
    }


def counterparty(counterparty_id=1, legal_address_id=1, name="Fahey and Sons", updated=T0):
    return {
        "counterparty_id": counterparty_id, "counterparty_legal_name": name,
        "legal_address_id": legal_address_id, "commercial_contact": "Micheal Toy",
        "delivery_contact": "Mrs. Lucy Runolfsdottir", "created_at": T0, "last_updated": updated,
    }


def staff(staff_id=1, department_id=1, first="Jeremie", last="Franey", email=None, updated=T0):
    return {
        "staff_id": staff_id, "first_name": first, "last_name": last, "department_id": department_id,
        "email_address": email or f"{first.lower()}.{last.lower()}@terrifictotes.com",
        "created_at": T0, "last_updated": updated,
    }


def sales_order(sales_order_id=1, updated="2022-11-03T14:20:52.186000", **overrides):
    row = {
        "sales_order_id": sales_order_id, "created_at": "2022-11-03T14:20:52.186000",
        "last_updated": updated, "design_id": 1, "staff_id": 1, "counterparty_id": 1,
        "units_sold": 42972, "unit_price": 3.94, "currency_id": 1,
        "agreed_delivery_date": "2022-11-07", "agreed_payment_date": "2022-11-08",
        "agreed_delivery_location_id": 1,
    }
    row.update(overrides)
    return row


def payment_type(payment_type_id=1, name="SALES_RECEIPT", updated=T0):
    return {"payment_type_id": payment_type_id, "payment_type_name": name, "created_at": T0, "last_updated": updated}


def transaction(transaction_id=1, kind="SALE", sales_order_id=1, purchase_order_id=None, updated=T0):
    return {
        "transaction_id": transaction_id, "transaction_type": kind, "sales_order_id": sales_order_id,
        "purchase_order_id": purchase_order_id, "created_at": T0, "last_updated": updated,
    }


def purchase_order(purchase_order_id=1, updated="2022-11-03T14:20:52.187000", **overrides):
    row = {
        "purchase_order_id": purchase_order_id, "created_at": "2022-11-03T14:20:52.187000",
        "last_updated": updated, "staff_id": 1, "counterparty_id": 1, "item_code": "ZDOI5EA",
        "item_quantity": 371, "item_unit_price": 361.39, "currency_id": 1,
        "agreed_delivery_date": "2022-11-09", "agreed_payment_date": "2022-11-07",
        "agreed_delivery_location_id": 1,
    }
    row.update(overrides)
    return row


def payment(payment_id=1, updated="2022-11-03T14:20:52.186000", paid=False, **overrides):
    row = {
        "payment_id": payment_id, "created_at": "2022-11-03T14:20:52.186000", "last_updated": updated,
        "transaction_id": 1, "counterparty_id": 1, "payment_amount": 56925.44, "currency_id": 1,
        "payment_type_id": 1, "paid": paid, "payment_date": "2022-11-07",
        "company_ac_number": 52923196, "counterparty_ac_number": 32957646,
    }
    row.update(overrides)
    return row


def encode_lines(rows) -> bytes:
    """Rows as JSON lines; a str or bytes item is written as it is (a broken line)."""
    out = []
    for row in rows:
        if isinstance(row, bytes):
            out.append(row)
        elif isinstance(row, str):
            out.append(row.encode())
        else:
            out.append(json.dumps(row).encode())
    return b"\n".join(out) + b"\n"


DIMENSIONS = {
    "currency": [currency()],
    "design": [design()],
    "address": [address()],
    "department": [department()],
    "counterparty": [counterparty()],
    "staff": [staff()],
}


class Harness:
    """The pipeline over in-memory buckets and parameters, one fresh "process" per invoke."""

    def __init__(self, kill_after: int | None = None) -> None:
        self.writes = Writes(kill_after)
        self.ingestion = MemoryBucket()
        self.processed = MemoryBucket(self.writes)
        self.ids = MemoryPacketIds(packet_id_parameters(PREFIX), self.writes)
        self.metric_stream = io.StringIO()

    def upload(self, table: str, packet_id: int, rows, gz: bool = False, part: str = "") -> str:
        body = encode_lines(rows)
        key = f"{keys.packet_prefix(table, packet_id)}ingested_20241114T153409.845000Z{part}.jsonl"
        if gz:
            key, body = key + ".gz", gzip.compress(body)
        self.ingestion.put(key, body)
        return key

    def upload_dimensions(self, packet_id: int = 1, **tables) -> list[str]:
        named = []
        for table, rows in {**DIMENSIONS, **tables}.items():
            self.upload(table, packet_id, rows)
            named.append(f"{table}:{packet_id}")
        return named

    def invoke(self, *packets: str) -> RunSummary:
        event = parse_event(
            {"packets": [{"table": p.split(":")[0], "id": int(p.split(":")[1])} for p in packets]}
        )
        metrics = Metrics(stream=self.metric_stream)
        try:
            return Pipeline(self.ingestion, self.processed, self.ids, PREFIX, metrics).run(event)
        finally:
            metrics.flush()

    def metrics(self) -> list[dict]:
        return [json.loads(line) for line in self.metric_stream.getvalue().splitlines()]

    # -- what was produced -----------------------------------------------------

    def output_keys(self, table: str) -> list[str]:
        return self.processed.list_keys(f"{table}/")

    def output_numbers(self, table: str) -> list[int]:
        return sorted(int(k.split("_packet_")[1].split("_")[0]) for k in self.output_keys(table))

    def rows(self, table: str) -> list[dict]:
        """Every row written to `table`, across its packets, in packet order."""
        tables = [from_parquet(self.processed.read(k)) for k in self._in_packet_order(table)]
        return [row for t in tables for row in t.to_pylist()]

    def table(self, table: str, n: int) -> pa.Table:
        [key] = [k for k in self.output_keys(table) if f"_packet_{n}_" in k]
        return from_parquet(self.processed.read(key))

    def _in_packet_order(self, table: str) -> list[str]:
        return sorted(self.output_keys(table), key=lambda k: int(k.split("_packet_")[1].split("_")[0]))

    def quarantine(self, output_table: str, source: str) -> list[dict]:
        table, packet_id = source.split(":")
        data = self.processed.read(keys.quarantine_key(output_table, table, int(packet_id)))
        return [json.loads(line) for line in data.splitlines()] if data else []

    def consumed(self, table: str) -> int:
        return self.ids.values[consumed_parameter(PREFIX, table)]

    def produced(self, table: str) -> int:
        return self.ids.values[produced_parameter(PREFIX, table)]

    def check_invariants(self) -> None:
        """Gapless numbering, produced ids matching the files, no orphans, nothing pending."""
        store_invariants(self.processed.objects, self.ids.values)

    def fork(self) -> Harness:
        """An independent copy of both buckets and the ids, as they stand now."""
        copy = Harness()
        copy.writes.count, copy.writes.log = self.writes.count, list(self.writes.log)
        for mine, theirs in ((self.ingestion, copy.ingestion), (self.processed, copy.processed)):
            theirs.objects, theirs.modified = dict(mine.objects), dict(mine.modified)
            theirs.metadata = {key: dict(value) for key, value in mine.metadata.items()}
        copy.ids.values = dict(self.ids.values)
        return copy

    def fact_versions(self) -> Counter:
        return Counter(
            (r["sales_order_id"], r["last_updated_date"], r["last_updated_time"])
            for r in self.rows("fact_sales_order")
        )


def store_invariants(objects: Mapping[str, bytes], ids: Mapping[str, int | str], prefix: str = PREFIX) -> None:
    """Gapless numbering, produced ids matching the files, no orphans, nothing pending:
    over a processed bucket's objects and the packet-id parameters, wherever they live."""
    referenced = set()
    for key in sorted(k for k in objects if k.startswith(keys.COMMITS)):
        record = CommitRecord.from_json(key, objects[key])
        referenced |= {o.key for o in record.outputs + record.quarantine}
        referenced |= {record.state} if record.state else set()
    for table in OUTPUT_TABLES:
        table_keys = [k for k in objects if k.startswith(f"{table}/")]
        numbers = sorted(int(k.split("_packet_")[1].split("_")[0]) for k in table_keys)
        assert numbers == list(range(1, len(numbers) + 1)), f"{table} numbers {numbers}"
        assert int(ids[produced_parameter(prefix, table)]) == len(numbers), table
        for key in table_keys:
            assert key in referenced, f"orphan output {key}"
    assert [k for k in objects if k.startswith(keys.PENDING)] == []
