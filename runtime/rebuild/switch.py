"""The switch-over to a rebuilt generation (docs/rebuild.md#switch-over).

After a rebuild, the live pipeline carries on in the new generation: its function is
pointed at the generation's bucket (`-c processed_bucket=...`, as any imported bucket),
and its packet ids (the live SSM prefix) take the generation's values. The old values
are recorded in the old bucket first (`_generations/switched_to_<bucket>.json`), so the
old generation stays whole, and resumable, until the operator drops it. Then the live
pipeline catches up in the new generation on whatever the ingestion wrote since the
rebuild's plan, as after any pause (docs/design.md#backlog).

Run with the live function paused (reserved concurrency 0) and nothing pending in the
old bucket, so no invocation moves an id meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from runtime import keys
from runtime.errors import CorruptRecordError
from runtime.ports import PacketIds, ProcessedStore
from runtime.rebuild.report import REPORT_KEY
from runtime.tables import packet_id_parameters

SWITCHED = "_generations/"


def switched_key(bucket: str) -> str:
    return f"{SWITCHED}switched_to_{bucket}.json"


def switch_ids(
    *,
    old_store: ProcessedStore,
    new_store: ProcessedStore,
    new_bucket: str,
    ids: PacketIds,
    live_prefix: str,
    generation_prefix: str,
    write: Callable[[dict[str, int]], None],
) -> dict[str, int]:
    """Record the live ids in the old bucket, then give the live prefix the
    generation's ids (through `write`, which overwrites). Returns what was written."""
    if new_store.read(REPORT_KEY) is None:
        raise CorruptRecordError("the generation has no rebuild report: the rebuild has not finished")
    if old_store.list_keys(keys.PENDING):
        raise CorruptRecordError("the live bucket has pending packets: pause the function and let them finish first")
    done = old_store.read(switched_key(new_bucket))
    if done is not None:  # a switch interrupted after its record: write the same again
        generation = json.loads(done)["ids_after"]
    else:
        live = {name: ids.read_packet_id(name) for name in packet_id_parameters(live_prefix)}
        generation = dict(zip(packet_id_parameters(live_prefix),
                              (ids.read_packet_id(n) for n in packet_id_parameters(generation_prefix))))  # fmt: skip
        record = {"live_prefix": live_prefix, "generation": {"bucket": new_bucket, "ssm_prefix": generation_prefix},
                  "ids_before": live, "ids_after": generation}  # fmt: skip
        old_store.put_if_absent(switched_key(new_bucket), json.dumps(record, indent=1, sort_keys=True).encode(), {})
    write(generation)
    return generation


def main(argv: list[str] | None = None) -> int:
    """python -m runtime.rebuild.switch --bucket <generation bucket> --ssm-prefix <its
    prefix>: with the live function's settings in the environment (as `runtime.operations`)."""
    import argparse
    import os
    import sys

    import boto3

    from runtime.adapters.aws import CLIENT_CONFIG
    from runtime.adapters.generation import set_packet_ids
    from runtime.adapters.s3 import S3Bucket
    from runtime.adapters.ssm import SsmPacketIds
    from runtime.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m runtime.rebuild.switch", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="the rebuilt generation's bucket")
    parser.add_argument("--ssm-prefix", required=True, help="the rebuilt generation's packet-id prefix")
    args = parser.parse_args(argv)
    settings = Settings.from_env(os.environ)
    session = boto3.session.Session()
    s3, ssm = session.client("s3", config=CLIENT_CONFIG), session.client("ssm", config=CLIENT_CONFIG)
    written = switch_ids(
        old_store=S3Bucket(s3, settings.processed_bucket), new_store=S3Bucket(s3, args.bucket),
        new_bucket=args.bucket, ids=SsmPacketIds(ssm), live_prefix=settings.ssm_prefix,
        generation_prefix=args.ssm_prefix.rstrip("/"), write=lambda values: set_packet_ids(ssm, values),
    )
    print(json.dumps(written, indent=1))
    print(f"the live ids now follow s3://{args.bucket}; deploy with -c processed_bucket={args.bucket}, "
          "then let the function run again (docs/rebuild.md).", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
