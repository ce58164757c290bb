"""The realistic workload every reliability test drives, and how its end state is read.

E1 names packet 1 of every table the processor consumes; E2 updates a department and an
address (packet 3: packet 2 is missing, so passed over) and brings two more sales_order
packets, one re-sending a version already written; then address:2 arrives late and is
processed at an operator's request (late_arrival); E3 is a small later event (a new
currency, a new member of staff). (A fact changed in place is not in this workload: had
E2 lost its pending mark and gone after E3, or E1 after E2, the packetization of the
facts would differ; tests/unit/test_recovery.py sweeps it.) Bad rows are spread through them: a line that is not
JSON, a negative units_sold, a price with three decimals, staff whose department has
not arrived yet, and an exact duplicate row.

The end state of a run is canonical data: every object of the processed bucket (bytes
and user metadata) and every packet-id parameter. Two runs agree when those are equal.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

import pyarrow.parquet as pq

from runtime.star import ARROW_SCHEMAS
from runtime.tables import FACT, OUTPUT_TABLES, OUTPUTS
from sandbox.seed import LocalStack, create_resources
from tests.support.harness import (
    address,
    counterparty,
    currency,
    department,
    design,
    encode_lines,
    sales_order,
    staff,
)

NAMES = LocalStack()

PACKETS: dict[tuple[str, int], list] = {
    ("currency", 1): [currency(1, "GBP"), currency(2, "USD")],
    ("design", 1): [design(1), design(2, "Steel")],
    ("address", 1): [address(1), address(2)],
    ("department", 1): [department(1), department(2, "Finance")],
    ("counterparty", 1): [counterparty(1, 1), counterparty(2, 2)],
    # Staff 3 waits for department 9, which only arrives in E2; the last line is not JSON.
    ("staff", 1): [staff(1, 1), staff(2, 2, "Deron", "Beier"), staff(3, 9, "Ann", "Lee"), '{"staff_id": 4,'],
    ("sales_order", 1): [
        sales_order(1),
        sales_order(2, staff_id=2, currency_id=2),
        sales_order(3, staff_id=3),  # staff 3 is not in dim_staff yet: quarantined
        "broken",
        sales_order(6, units_sold=-1),
    ],
    ("department", 2): [
        department(1, "Sales", "Leeds", updated="2023-01-01T00:00:00"),
        department(9, "Dispatch", "Leds", updated="2023-01-01T00:00:01"),
    ],
    # address:2 is not there when E2 names address:3: it is passed over, arrives late
    # (LATE_ARRIVAL) and is processed at an operator's request before the last event.
    ("address", 3): [address(2, city="York", updated="2023-01-02T00:00:00")],
    ("sales_order", 2): [
        sales_order(1, updated="2023-01-04T00:00:00", units_sold=1),
        sales_order(4, staff_id=3, updated="2023-01-04T00:00:01"),
        sales_order(7, updated="2023-01-04T00:00:02", unit_price="3.999"),
    ],
    ("sales_order", 3): [
        sales_order(5, staff_id=2, counterparty_id=2, updated="2023-01-05T00:00:00"),
        sales_order(5, staff_id=2, counterparty_id=2, updated="2023-01-05T00:00:00"),
        sales_order(1),  # a re-send of a version written in E1: skipped (the fact memory)
    ],
    ("currency", 2): [currency(3, "EUR", updated="2023-01-06T00:00:00")],
    ("staff", 2): [staff(4, 1, "Bo", "Ng", updated="2023-01-06T00:00:01")],
}

E1 = ("currency:1", "design:1", "address:1", "department:1", "counterparty:1", "staff:1", "sales_order:1")
E2 = ("department:2", "address:3", "sales_order:2", "sales_order:3")
# The passed-over address:2 arrives (older than address:3's row: not emitted, the state
# rules hold) and an operator asks for it to be processed late.
LATE_ARRIVAL = ("address", 2, [address(2, city="Yorkk", updated="2023-01-01T12:00:00")])
E3 = ("currency:2", "staff:2")
EVENTS = (E1, E2, E3)


def event(packets) -> dict:
    """The Lambda event naming `packets` ("table:id" strings)."""
    return {"packets": [{"table": p.split(":")[0], "id": int(p.split(":")[1])} for p in packets]}


def ingestion_key(table: str, packet_id: int) -> str:
    return f"{table}/{table}_packet_{packet_id}_ingested_20241114T153409.845000Z.jsonl"


def late_arrival(s3, names: LocalStack = NAMES) -> bool:
    """The late packet's objects arrive and an operator asks for it (runtime.operations
    late, with its own clients); False when it was not passed over (yet)."""
    from runtime.adapters.s3 import S3Bucket
    from runtime.operations import OperationRefused, late

    table, packet_id, rows = LATE_ARRIVAL
    s3.put_object(Bucket=names.ingestion_bucket, Key=ingestion_key(table, packet_id), Body=encode_lines(rows))
    try:
        late(S3Bucket(s3, names.processed_bucket), S3Bucket(s3, names.ingestion_bucket), table, packet_id)
    except OperationRefused:
        return False
    return True


def seed(s3, ssm, packets: dict | None = None, names: LocalStack = NAMES) -> None:
    """What the stack creates, then the ingestion's packets."""
    create_resources(s3, ssm, names)
    for (table, packet_id), rows in (PACKETS if packets is None else packets).items():
        s3.put_object(Bucket=names.ingestion_bucket, Key=ingestion_key(table, packet_id), Body=encode_lines(rows))


@dataclass(frozen=True)
class EndState:
    objects: dict  # key -> (bytes, user metadata)
    ids: dict  # parameter name -> value

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def diff(self, other: EndState) -> str:
        """What differs, for an assertion message."""
        lines = []
        for key in sorted(set(self.objects) | set(other.objects)):
            if self.objects.get(key) != other.objects.get(key):
                lines.append(f"  object {key}: {'differs' if key in self.objects and key in other.objects else 'only in ' + ('left' if key in self.objects else 'right')}")
        for name in sorted(set(self.ids) | set(other.ids)):
            if self.ids.get(name) != other.ids.get(name):
                lines.append(f"  {name}: {self.ids.get(name)} != {other.ids.get(name)}")
        return "\n".join(lines[:40])


def end_state(s3, ssm, names: LocalStack = NAMES) -> EndState:
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=names.processed_bucket):
        for item in page.get("Contents", ()):
            got = s3.get_object(Bucket=names.processed_bucket, Key=item["Key"])
            objects[item["Key"]] = (got["Body"].read(), got.get("Metadata", {}))
    ids = {
        p["Name"]: p["Value"]
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=names.ssm_prefix, Recursive=True)
        for p in page["Parameters"]
    }
    return EndState(objects, ids)


def state_digest(s3, ssm, bucket: str, prefix: str) -> dict:
    """An end state small enough to pass between processes, read with listings only:
    the MD5 of every processed object (its ETag: every object is a single PUT) and the
    packet-id values by their name under `prefix`."""
    objects = {
        item["Key"]: item["ETag"].strip('"')
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", ())
    }
    ids = {
        p["Name"][len(prefix):]: p["Value"]
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=True)
        for p in page["Parameters"]
    }
    return {"objects": objects, "ids": ids}


# -- rows: what the loader would see ------------------------------------------------



def _packet_number(key: str) -> int:
    return int(key.split("_packet_")[1].split("_")[0])


def emitted_rows(state: EndState) -> dict[str, list[tuple]]:
    """Every row of every output table, in the loader's order (packet by packet)."""
    rows = {}
    for table in OUTPUT_TABLES:
        found = []
        for key in sorted(state.keys(f"{table}/"), key=_packet_number):
            t = pq.read_table(io.BytesIO(state.objects[key][0]))
            assert t.schema.remove_metadata() == ARROW_SCHEMAS[table], key
            found.extend(tuple(sorted(r.items())) for r in t.to_pylist())
        rows[table] = found
    return rows


@dataclass(frozen=True)
class Census:
    """Rows of a run compared with a reference run, as the warehouse would end up.

    Facts are history (every version is a row): lost = reference rows with fewer copies,
    duplicated = reference rows with more copies. Dimensions are upserted by key, so lost
    counts the rows of the reference's final view (latest row per key) that the run's
    final view lacks, and duplicated counts identical rows emitted more often than in
    the reference.
    """

    lost: int
    duplicated: int


def census(run: EndState, reference: EndState) -> Census:
    got, want = emitted_rows(run), emitted_rows(reference)
    lost = duplicated = 0
    for table in OUTPUT_TABLES:
        g, w = Counter(got[table]), Counter(want[table])
        duplicated += sum(max(0, g[row] - n) for row, n in w.items())
        if OUTPUTS[table].kind == FACT:
            lost += sum(max(0, n - g[row]) for row, n in w.items())
        else:
            lost += len(_final_view(want[table], table) - _final_view(got[table], table))
    return Census(lost, duplicated)


def _final_view(rows: list[tuple], table: str) -> set[tuple]:
    key = ARROW_SCHEMAS[table].names[0]  # every dimension's primary key comes first
    latest = {}
    for row in rows:
        latest[dict(row)[key]] = row
    return set(latest.values())
