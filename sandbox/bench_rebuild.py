"""`make bench`, the rebuild part: one synthetic history rebuilt with 1, 2 and 4 parallel
workers staging its fact packets, in one run: wall time and rows/s of each.

The history: the fixture dimensions and N sales_order packets of R synthetic rows each
(fixture rows with new ids), as files (sandbox.local_store), so S3 latency is not
measured. Each run rebuilds into a fresh target: plan and dimensions, then the fact
items staged by a pool of worker processes (the Distributed Map's concurrent batches),
then the ordered commit (one process, as in the workflow). The workers are started
before the clock, as warm Lambda containers would be.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
PREFIX = "/totesys/bench/generations/g"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def history(packets: int, rows: int) -> Path:
    """The ingestion directory, generated once per shape."""
    from sandbox.seed import fixture_lines, packet_key
    from runtime.tables import SOURCE_TABLES

    root = CACHE / f"rebuild_history_{packets}x{rows}"
    if root.exists():
        return root
    partial = root.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    say(f"  generating {packets} sales_order packets of {rows:,} rows into {root.relative_to(ROOT)} (once) ...")
    for source in SOURCE_TABLES:
        if source.keeps_state:
            lines = fixture_lines(source.name)
            _write(partial, packet_key(source.name, 1, lines), b"".join(lines))
    tails = [line.decode().split(", ", 1)[1].rstrip("\n") for line in fixture_lines("sales_order")]
    for p in range(packets):
        lines = [f'{{"sales_order_id": {p * rows + i + 1}, {tails[(p * rows + i) % len(tails)]}\n'.encode()
                 for i in range(rows)]
        _write(partial, packet_key("sales_order", p + 1, lines), b"".join(lines))
    partial.rename(root)
    return root


def _write(root: Path, key: str, body: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


def _target(ingestion: Path, store: Path, values: dict[str, int] | None = None):
    from runtime.observability import Metrics
    from runtime.rebuild.steps import Target
    from runtime.tables import packet_id_parameters
    from sandbox.local_store import LocalDirectory, MemoryPacketIds

    ids = MemoryPacketIds(packet_id_parameters(PREFIX))
    if values:
        ids.values.update(values)
    return Target(LocalDirectory(ingestion), LocalDirectory(store), ids, PREFIX, Metrics())


def _stage(job: tuple[str, str, dict[str, int], list[dict]]) -> int:
    """One Map batch, in a worker: the target's ids as the dimensions left them (the
    stage step only reads them)."""
    from runtime.rebuild import steps

    ingestion, store, values, items = job
    return steps.stage_items(_target(Path(ingestion), Path(store), values), items)["rows"]


def _warm(_: int) -> int:
    importlib.import_module("runtime.rebuild.steps")  # a warm container has its imports done

    return os.getpid()


def rebuild(ingestion: Path, workers: int, batch: int) -> dict:
    from runtime.observability import logger
    from runtime.rebuild import steps

    logger.setLevel("WARNING")
    with tempfile.TemporaryDirectory(dir=CACHE) as work, \
            multiprocessing.get_context("spawn").Pool(workers) as pool:  # fmt: skip
        pool.map(_warm, range(workers))
        store = Path(work) / "target"
        target = _target(ingestion, store)
        started = time.perf_counter()
        planned = steps.plan(target)
        while not steps.dimensions(target, steps.Budget(lambda: 1e9, 0))["dimensions_done"]:
            pass
        dimensions_done = time.perf_counter()
        items = planned["items"]
        jobs = [(str(ingestion), str(store), dict(target.ids.values), items[i : i + batch])
                for i in range(0, len(items), batch)]
        rows = sum(pool.imap_unordered(_stage, jobs))
        staged = time.perf_counter()
        while not steps.commit(target, steps.Budget(lambda: 1e9, 0))["commit_done"]:
            pass
        steps.report(target)
        done = time.perf_counter()
    return {"workers": workers, "rows": rows, "dimensions_s": dimensions_done - started,
            "stage_s": staged - dimensions_done, "commit_s": done - staged, "wall_s": done - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=16, help="sales_order packets in the history")
    parser.add_argument("--rows", type=int, default=50_000, help="rows per packet")
    parser.add_argument("--batch", type=int, default=1, help="fact packets per Map batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    ingestion = history(args.packets, args.rows)
    say(f"rebuild: {args.packets} fact packets x {args.rows:,} rows, {args.batch} per batch, "
        f"{os.cpu_count()} CPUs on this machine")
    say(f"  {'workers':>7}  {'wall s':>7}  {'rows/s':>9}  {'dims s':>6}  {'stage s':>7}  {'commit s':>8}  speed-up")
    first = None
    for workers in args.workers:
        result = rebuild(ingestion, workers, args.batch)
        first = first or result["wall_s"]
        say(f"  {workers:>7}  {result['wall_s']:>7.2f}  {result['rows'] / result['wall_s']:>9,.0f}  "
            f"{result['dimensions_s']:>6.2f}  {result['stage_s']:>7.2f}  {result['commit_s']:>8.2f}  "
            f"{first / result['wall_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
