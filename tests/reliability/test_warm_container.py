"""A warm container: 1,000 invocations in one process, compared with cold processing,
its memory measured, and nothing it keeps between invocations allowed to go stale.

The soak runs in a child process (procs.py) so its resident set size is its own. Its
1,000 events (soak.py) are compared, outcome by outcome and end state by end state,
with two cold references:
- the first COLD_SAMPLE events, each in a fresh process of its own, against moto's
  server (a second processed bucket and SSM prefix, the same ingestion bucket); the
  warm process takes a digest of its end state after that many events;
- all 1,000 events through a fresh Pipeline per event over in-memory fakes of the
  ports (tests/support/fakes.py): no client, no setting, nothing survives between events.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

import boto3
import pyarrow.parquet as pq
import pytest

from runtime.adapters.aws import CLIENT_CONFIG
from runtime.adapters.s3 import S3Bucket
from runtime.adapters.ssm import SsmPacketIds
from runtime.errors import MissingPacketError, UnreadableObjectError
from runtime.events import parse_event
from runtime.handler import lambda_handler
from runtime.observability import Metrics
from runtime.pipeline import Pipeline
from runtime.tables import packet_id_parameters
from sandbox.seed import LocalStack
from tests.support.fakes import MemoryBucket, MemoryPacketIds
from tests.support.harness import currency, department, design, encode_lines, staff
from tests.reliability import report
from tests.reliability.conftest import handler_clients, handler_env
from tests.reliability.procs import Zygote, outcome
from tests.reliability.soak import soak_events
from tests.reliability.workload import NAMES, event, ingestion_key, state_digest

SOAK_EVENTS = 1000
COLD_SAMPLE = 30
RSS_BOUND = 50 * 2**20  # growth allowed between event 100 and event 1,000
COLD = LocalStack(processed_bucket="totesys-processed-cold", ssm_prefix="/totesys/cold")


def upload(s3, packets) -> None:
    def put(item):
        (table, packet_id), rows = item
        s3.put_object(Bucket=NAMES.ingestion_bucket, Key=ingestion_key(table, packet_id), Body=encode_lines(rows))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, packets.items()))


def in_memory(events, packets) -> tuple[list[dict], dict]:
    """Every event through a fresh Pipeline over in-memory ports."""
    ingestion, processed = MemoryBucket(), MemoryBucket()
    for (table, packet_id), rows in packets.items():
        ingestion.put(ingestion_key(table, packet_id), encode_lines(rows))
    ids = MemoryPacketIds(packet_id_parameters(NAMES.ssm_prefix))
    outcomes = []
    for e in events:
        def invoke(e=e):
            summary = Pipeline(ingestion, processed, ids, NAMES.ssm_prefix, Metrics(stream=io.StringIO())).run(
                parse_event(e))
            return {"status": "succeeded", "packets_processed": [o.packet for o in summary.outcomes],
                    "already_processed": summary.already_processed}
        outcomes.append(outcome(invoke))
    digest = {
        "objects": {k: hashlib.md5(v).hexdigest() for k, v in processed.objects.items()},
        "ids": {name[len(NAMES.ssm_prefix):]: str(v) for name, v in ids.values.items()},
    }
    return outcomes, digest


def test_a_thousand_events_in_one_warm_process_equal_cold_processing(stack, moto, tmp_path):
    events, packets = soak_events(SOAK_EVENTS)
    stack.fresh(packets={})
    upload(stack.s3, packets)
    stack.s3.create_bucket(Bucket=COLD.processed_bucket,
                           CreateBucketConfiguration={"LocationConstraint": stack.s3.meta.region_name})
    for name in packet_id_parameters(COLD.ssm_prefix):
        stack.ssm.put_parameter(Name=name, Value="0", Type="String", Overwrite=True)

    zygote = Zygote(handler_env(moto), tmp_path / "zygote.log")
    try:
        cold_env = {**NAMES.env(), **COLD.env(), "INGESTION_BUCKET": NAMES.ingestion_bucket}
        cold_outcomes = [zygote.run({"invoke": e, "env": cold_env})["outcome"] for e in events[:COLD_SAMPLE]]
        warm = zygote.run({"soak": events, "snapshot_at": COLD_SAMPLE})
    finally:
        zygote.close()
    cold = state_digest(stack.s3, stack.ssm, COLD.processed_bucket, COLD.ssm_prefix)
    final = state_digest(stack.s3, stack.ssm, NAMES.processed_bucket, NAMES.ssm_prefix)
    reference_outcomes, reference = in_memory(events, packets)

    rss = warm["rss"]
    growth = rss[SOAK_EVENTS - 1] - rss[99]
    statuses = [o["status"] for o in warm["outcomes"]]
    processed = sum(len(o.get("processed", ())) for o in warm["outcomes"])
    report.NOTES.append(
        f"warm soak: {SOAK_EVENTS} events ({processed} packets processed, {statuses.count('failed')} failed) "
        f"in {warm['seconds']:.0f} s; RSS {rss[0] / 2**20:.1f} MB after event 1, {rss[99] / 2**20:.1f} MB after "
        f"event 100, {rss[-1] / 2**20:.1f} MB after event {SOAK_EVENTS}: growth {growth / 2**20:+.1f} MB "
        f"(bound {RSS_BOUND / 2**20:.0f} MB); {len(final['objects'])} objects"
    )

    assert statuses.count("succeeded") == SOAK_EVENTS, [o for o in warm["outcomes"] if o["status"] != "succeeded"][:3]
    assert warm["outcomes"][:COLD_SAMPLE] == cold_outcomes
    assert warm["snapshot"] == cold, "after the cold sample, the warm and cold end states differ"
    assert warm["outcomes"] == reference_outcomes
    assert final == reference
    assert processed > 400 and final["ids"]["/consumed/sales_order"] != "0"
    assert growth < RSS_BOUND, f"RSS grew by {growth / 2**20:.1f} MB between event 100 and {SOAK_EVENTS}"


# -- nothing cached between invocations goes stale --------------------------------


def _put_packet(stack, table, packet_id, body: bytes, gz=False):
    key = ingestion_key(table, packet_id) + (".gz" if gz else "")
    stack.s3.put_object(Bucket=NAMES.ingestion_bucket, Key=key, Body=body)
    return key


def another_container(packets) -> None:
    """An invocation in another container: its own session, clients and pipeline, as
    Lambda may run the next invocation anywhere (reserved concurrency 1 only means
    one at a time)."""
    session = boto3.session.Session()
    s3, ssm = session.client("s3", config=CLIENT_CONFIG), session.client("ssm", config=CLIENT_CONFIG)
    Pipeline(S3Bucket(s3, NAMES.ingestion_bucket), S3Bucket(s3, NAMES.processed_bucket), SsmPacketIds(ssm),
             NAMES.ssm_prefix, Metrics(stream=io.StringIO())).run(parse_event(event(packets)))


def test_work_another_container_did_in_between_is_seen_by_the_warm_one(stack):
    """The warm container processes currency:1 and department:1; another container then
    processes currency:2 and department:2 (the department moves to Leeds); back in the
    warm container, currency:3 must be numbered after the other container's output
    (packet ids read afresh from SSM) and staff:1 must join with the department as the
    other container left it (state read afresh from S3)."""
    for k, code in enumerate(("GBP", "USD", "EUR"), start=1):
        _put_packet(stack, "currency", k, encode_lines([currency(k, code, updated=f"2023-01-0{k}T00:00:00")]))
    _put_packet(stack, "department", 1, encode_lines([department(1, "Sales", "Manchester")]))
    _put_packet(stack, "department", 2, encode_lines([department(1, "Sales", "Leeds", updated="2023-02-01T00:00:00")]))
    _put_packet(stack, "staff", 1, encode_lines([staff(1, 1)]))
    lambda_handler(event(["currency:1", "department:1"]), None)
    clients = handler_clients()
    another_container(["currency:2", "department:2"])
    after = lambda_handler(event(["currency:3", "staff:1"]), None)
    assert handler_clients() == clients  # the same warm clients throughout
    assert after["packets_processed"] == ["currency:3", "staff:1"]
    state = stack.end_state()
    assert [k.split("_processed_")[0].rsplit("_", 1)[1] for k in state.keys("dim_currency/")] == ["1", "2", "3"]
    assert state.ids[f"{NAMES.ssm_prefix}/produced/dim_currency"] == "3"
    [staff_key] = state.keys("dim_staff/")
    assert pq.read_table(io.BytesIO(state.objects[staff_key][0]))["location"].to_pylist() == ["Leeds"]


def test_an_ingestion_object_fixed_between_invocations_is_read_again(stack):
    """staff:1 is a broken gzip: the invocation fails and holds it back. The ingestion
    rewrites the object; the retry in the same warm container must read the new bytes."""
    key = _put_packet(stack, "staff", 1, b"\x1f\x8b not really gzip", gz=True)
    with pytest.raises(UnreadableObjectError):
        lambda_handler(event(["staff:1"]), None)
    clients = handler_clients()
    stack.s3.put_object(Bucket=NAMES.ingestion_bucket, Key=key, Body=gzip.compress(encode_lines([staff(1, 1)])))
    result = lambda_handler(event(["staff:1"]), None)
    assert handler_clients() == clients
    assert result["packets_processed"] == ["staff:1"]
    assert stack.end_state().ids[f"{NAMES.ssm_prefix}/consumed/staff"] == "1"


def test_a_packet_written_after_a_missing_packet_error_is_found(stack):
    """design:1 is named before the ingestion has written it (retryable); once written,
    the warm container's retry must list it afresh."""
    with pytest.raises(MissingPacketError):
        lambda_handler(event(["design:1"]), None)
    clients = handler_clients()
    _put_packet(stack, "design", 1, encode_lines([design(1)]))
    result = lambda_handler(event(["design:1"]), None)
    assert handler_clients() == clients
    assert result["packets_processed"] == ["design:1"] and result["rows_written"] == {"dim_design": 1}
