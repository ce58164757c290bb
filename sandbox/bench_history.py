"""`make bench` (second part): what the fact memory costs a packet as history grows.

A 1,000-row sales_order packet goes through the real pipeline (read, screen against
the memory, validate, write Parquet, write the memory's segment and manifest, commit)
with the buckets on local disk, once with an empty memory and once with 10 million
remembered versions (built once under .cache/bench_history/, as the segments and
manifest the pipeline itself would have written for 64k-row packets). Three packets:

- new:      1,000 new versions, later than everything remembered (the usual packet);
- boundary: the same, but 50 of them repeat the newest remembered versions (an
            ingestion re-sending its boundary rows);
- mutated:  the same, but 53 of them are versions picked at random across all of
            history (as many as the source changed in place between two real captures);
- old:      1,000 versions picked at random across all of history (the worst case:
            every segment's time range is hit, so every segment is read).

Each measurement runs in a fresh process, after a warm-up packet on a throwaway store
(imports and caches warm), and reports the wall time of the packet's invocation, the
peak RSS growth during it (sampled every 2 ms from /proc/self/statm) and how many
objects under _history/ it read.

    python -m sandbox.bench_history [--versions 10000000] [--rows 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench_history"
CASES = ("new", "boundary", "mutated", "old")
T0 = datetime(2022, 1, 1)
BOUNDARY = 50
MUTATED = 53  # sales orders changed in place between two real totesys captures


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the remembered versions ---------------------------------------------------------


def memory(versions: int) -> tuple[Path, int]:
    """The fact memory of `versions` versions (id i+1 at T0 + i seconds), built once:
    the directory holding its _history/ objects, and the manifest's packet number."""
    from runtime import history, keys

    path = CACHE / f"memory_{versions}"
    done = path / "manifest.txt"
    if done.exists():
        return path, int(done.read_text())
    if path.exists():
        shutil.rmtree(path)
    import numpy as np
    import pyarrow as pa

    say(f"  building a fact memory of {versions:,} versions under {path.relative_to(ROOT)} (once) ...")
    rng = np.random.default_rng(7)
    size, segments = history.MAX_SEGMENT_ROWS, []
    for n, start in enumerate(range(0, versions, size), start=1):
        i = np.arange(start, min(versions, start + size), dtype=np.int64)
        rows = pa.table({
            "__id": pa.array(i + 1, pa.int32()),
            "last_updated": pa.array(_micros(i), pa.int64()).cast(pa.timestamp("us")),
            "__hash": pa.array(rng.integers(0, 2**63, len(i), dtype=np.uint64), pa.uint64()),
            "__packet": pa.array(np.full(len(i), n, dtype=np.int64)),
        })
        segment = history._describe("sales_order", rows, n, n)
        _write(path, segment.key, history._parquet(history.newest_per_version(rows)))
        segments.append(segment)
    manifest = pa.Table.from_pylist([s.__dict__ for s in segments], schema=history.MANIFEST_SCHEMA)
    _write(path, keys.history_manifest_key("sales_order", len(segments)), history._parquet(manifest))
    done.write_text(str(len(segments)))
    return path, len(segments)


def _micros(i):
    return int((T0 - datetime(1970, 1, 1)).total_seconds() * 1_000_000) + i * 1_000_000


def _write(root: Path, key: str, body: bytes) -> None:
    target = root / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)


def packet_lines(case: str, rows: int, versions: int) -> list[bytes]:
    """The case's sales_order rows: fixture rows with the versions the case needs."""
    import numpy as np

    from sandbox.seed import fixture_lines

    fixtures = [json.loads(line) for line in fixture_lines("sales_order")]
    if case == "old" and versions:
        picked = np.random.default_rng(11).choice(versions, size=rows, replace=False)
    else:
        picked = np.arange(versions, versions + rows)
        if case == "boundary" and versions:
            picked[:BOUNDARY] = np.arange(versions - BOUNDARY, versions)
        if case == "mutated" and versions:
            picked[:MUTATED] = np.random.default_rng(13).choice(versions, size=MUTATED, replace=False)
    lines = []
    for n, i in enumerate(picked.tolist()):
        row = dict(fixtures[n % len(fixtures)])
        stamp = (T0 + timedelta(seconds=i)).isoformat(timespec="microseconds")
        row.update(sales_order_id=i + 1, created_at=stamp, last_updated=stamp)
        lines.append(json.dumps(row).encode() + b"\n")
    return lines


# -- one measurement, in a fresh process ------------------------------------------------


class Sampler(threading.Thread):
    """Peak resident memory while it runs, from /proc/self/statm."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start_rss = self.peak = self.rss()
        self.running = True

    def rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.page

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.002)

    def stop(self) -> int:
        self.running = False
        self.join()
        return max(self.peak, self.rss()) - self.start_rss


def measure(case: str, rows: int, versions: int) -> dict:
    from runtime.events import parse_event
    from runtime.observability import Metrics, logger
    from runtime.pipeline import Pipeline
    from runtime.tables import DEFAULT_SSM_PREFIX, SOURCE_TABLES, STATE_INPUTS, packet_id_parameters, produced_parameter
    from sandbox.local_store import LocalDirectory, MemoryPacketIds
    from sandbox.seed import fixture_lines, packet_key

    logger.setLevel("ERROR")
    # The dimension sources a sales order needs, in dependency order, from the declaration.
    dimensions = [s.name for s in SOURCE_TABLES if s.name in STATE_INPUTS["sales_order"]]
    store_of, manifest_n = memory(versions) if versions else (None, 0)
    lines = packet_lines(case, rows, versions)

    def pipeline(work: Path, with_memory: bool):
        ingestion, processed = LocalDirectory(work / "ingestion"), Reads(LocalDirectory(work / "processed"))
        for table in dimensions:
            dimension = fixture_lines(table)
            ingestion.put_if_absent(packet_key(table, 1, dimension), b"".join(dimension), {})
        ingestion.put_if_absent(packet_key("sales_order", 1, lines), b"".join(lines), {})
        ids = MemoryPacketIds(packet_id_parameters(DEFAULT_SSM_PREFIX))
        run = Pipeline(ingestion, processed, ids, DEFAULT_SSM_PREFIX, Metrics(stream=open(os.devnull, "w")))
        run.run(parse_event({"packets": [{"table": t, "id": 1} for t in dimensions]}))
        if with_memory and store_of is not None:
            for path in (store_of / "_history").rglob("*.parquet"):
                target = processed.inner.root / path.relative_to(store_of)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)  # no copy
            ids.values[produced_parameter(DEFAULT_SSM_PREFIX, "fact_sales_order")] = manifest_n
        return run, processed

    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        warm, _ = pipeline(Path(work) / "warm-up", with_memory=False)
        warm.run(parse_event({"packets": [{"table": "sales_order", "id": 1}]}))
        run, processed = pipeline(Path(work) / "measured", with_memory=True)
        processed.counting = True
        sampler = Sampler()
        sampler.start()
        started = time.perf_counter()
        summary = run.run(parse_event({"packets": [{"table": "sales_order", "id": 1}]}))
        wall = time.perf_counter() - started
        added = sampler.stop()
    return {
        "case": case, "versions": versions, "rows": rows, "wall_s": wall, "rss_added_mb": added / 1e6,
        "history_reads": processed.history_reads, "history_read_mb": processed.history_bytes / 1e6,
        "rows_written": summary.rows_written().get("fact_sales_order", 0),
    }


class Reads:
    """A processed store that counts what is read under _history/."""

    def __init__(self, inner) -> None:
        self.inner, self.counting, self.history_reads, self.history_bytes = inner, False, 0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, key: str):
        data = self.inner.read(key)
        if self.counting and key.startswith("_history/") and data is not None:
            self.history_reads += 1
            self.history_bytes += len(data)
        return data


# -- the driver ----------------------------------------------------------------------


def run_one(case: str, rows: int, versions: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.bench_history", "--measure", case, "--rows", str(rows),
         "--versions", str(versions)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{case} at {versions:,} versions failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000_000)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.measure:
        print(json.dumps(measure(args.measure, args.rows, args.versions)))
        return 0
    memory(args.versions)  # built before the timed runs
    say(f"fact memory: a {args.rows:,}-row sales_order packet, empty memory vs {args.versions:,} versions "
        f"(median of {args.repeat}, each in a fresh process)")
    header = (f"{'packet':<9} {'remembered':>11} {'wall s':>7} {'added s':>8} {'RSS +MB':>8} "
              f"{'added MB':>9} {'_history reads':>15} {'read MB':>8}")
    print(header)
    print("-" * len(header))
    for case in CASES:
        base = None
        for versions in (0, args.versions):
            runs = [run_one(case, args.rows, versions) for _ in range(args.repeat)]
            wall = statistics.median(r["wall_s"] for r in runs)
            rss = statistics.median(r["rss_added_mb"] for r in runs)
            base = base or (wall, rss)
            print(f"{case:<9} {versions:>11,} {wall:>7.3f} {wall - base[0]:>+8.3f} {rss:>8.1f} "
                  f"{rss - base[1]:>+9.1f} {runs[0]['history_reads']:>15} {runs[0]['history_read_mb']:>8.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
