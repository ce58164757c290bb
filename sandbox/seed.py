"""Create what the stack creates (buckets, packet-id parameters) and upload packets."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from runtime.keys import TS_FORMAT, packet_prefix
from runtime.tables import DEFAULT_SSM_PREFIX, packet_id_parameters

_LAST_UPDATED = re.compile(rb'"last_updated": "([^"]+)"')
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "totesys"


@dataclass(frozen=True)
class LocalStack:
    """The names a local run or a test uses."""

    ingestion_bucket: str = "totesys-ingestion-local"
    processed_bucket: str = "totesys-processed-local"
    ssm_prefix: str = DEFAULT_SSM_PREFIX

    def env(self) -> dict[str, str]:
        return {
            "INGESTION_BUCKET": self.ingestion_bucket,
            "PROCESSED_BUCKET": self.processed_bucket,
            "SSM_PREFIX": self.ssm_prefix,
        }


def create_resources(s3, ssm, names: LocalStack) -> None:
    """Buckets, and every packet-id parameter at 0, as the CDK stack would."""
    for bucket in (names.ingestion_bucket, names.processed_bucket):
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name}
        )
    for name in packet_id_parameters(names.ssm_prefix):
        ssm.put_parameter(Name=name, Value="0", Type="String", Overwrite=True)


def fixture_lines(table: str) -> list[bytes]:
    return (FIXTURES / f"{table}.jsonl").read_bytes().splitlines(keepends=True)


def packet_key(table: str, packet_id: int, lines: list[bytes], part: int | None = None, gz: bool = False) -> str:
    """An ingestion-style key, stamped with the latest last_updated of its rows."""
    found = (_LAST_UPDATED.search(line) for line in lines)
    latest = max((m.group(1).decode() for m in found if m), default="1970-01-01T00:00:00")
    stamp = datetime.fromisoformat(latest).strftime(TS_FORMAT)
    suffix = "" if part is None else f"_part{part:03d}"
    return f"{packet_prefix(table, packet_id)}ingested_{stamp}{suffix}.jsonl" + (".gz" if gz else "")


def upload_packet(s3, bucket: str, table: str, packet_id: int, lines: list[bytes], gz: bool = False) -> str:
    body = b"".join(lines)
    key = packet_key(table, packet_id, lines, gz=gz)
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if gz else body)
    return key


def split(lines: list[bytes], parts: int) -> list[list[bytes]]:
    size = -(-len(lines) // parts)
    return [lines[i : i + size] for i in range(0, len(lines), size)]


def payment_versions(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The fixture's payments as two ingestion runs see them: first every payment as it
    was created (a paid one still unpaid: `paid` false, `last_updated` = `created_at`),
    then the versions in which `paid` turned true, as the fixture holds them."""
    unpaid, paid = [], []
    for line in lines:
        row = json.loads(line)
        if row["paid"]:
            paid.append(line)
            line = (json.dumps({**row, "paid": False, "last_updated": row["created_at"]}) + "\n").encode()
        unpaid.append(line)
    return unpaid, paid
