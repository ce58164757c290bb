"""`make bench`: the real processing path on large sales_order packets, measured.

Generates sales_order packets (the fixture rows cycled with fresh ids, so the value
distributions are the real ones; cached under .cache/bench/), then times, each in a
fresh process and several times:

- ours:      the pipeline (read, coerce, screen, validate, write Parquet, commit) with
             the buckets on local disk, so the processing itself is what is measured;
- ours+S3:   the same through lambda_handler and moto's server (S3 transfer included);
- duckdb:    DuckDB doing the whole fact path on the same file: read_json with
             explicit columns, casts, the date/time split, decimal(10,2), Parquet
             (the reference the target is set against);
- pyarrow:   a bare pyarrow JSON parse of the same file;
- duckdb-parse: a bare DuckDB read_json of the same file into Arrow, with the read
             types our parse uses (the other candidate reader);
- pandas:    the common approach: pd.read_json(lines=True), .dt.date/.dt.time,
             to_parquet.

and prints the medians: rows, input MB, wall seconds, CPU seconds (user + system, every
thread), rows/s, peak RSS, output MB. The runs are interleaved (run 1 of every
measurement, then run 2, ...), so a machine whose load changes during the benchmark
weighs on every measurement alike; the ratio to the bare parse is also given as the
median of the ratios of runs made side by side, and the load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
DIMENSIONS = ("currency", "design", "address", "department", "counterparty", "staff")
PACKET_KEY = "sales_order/sales_order_packet_1_ingested_20241114T153409.845000Z.jsonl"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- input ----------------------------------------------------------------------


def packet(rows: int) -> Path:
    """A sales_order packet of `rows` rows, generated once."""
    path = CACHE / f"sales_order_{rows}.jsonl"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    say(f"  generating {rows:,} sales orders into {path.relative_to(ROOT)} (once) ...")
    from sandbox.seed import fixture_lines

    # Each fixture line starts with {"sales_order_id": N, ; keep the rest as it is.
    tails = [line.decode().split(", ", 1)[1].rstrip("\n") for line in fixture_lines("sales_order")]
    partial = path.with_suffix(".partial")
    with open(partial, "w") as out:
        step = 200_000
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            out.write("".join(f'{{"sales_order_id": {i + 1}, {tails[i % len(tails)]}\n' for i in range(start, stop)))
    partial.rename(path)
    return path


# -- one measurement, in a fresh process ------------------------------------------


class _Clock:
    """Wall and CPU seconds (user + system, all threads) of the measured section."""

    def __init__(self) -> None:
        self.wall, self._cpu = time.perf_counter(), _cpu()

    def stop(self) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self._cpu


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(kind: str, rows: int) -> dict:
    source = packet(rows)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        clock, out_bytes = _MEASURES[kind](source, Path(work))
    return {
        "kind": kind,
        "rows": rows,
        "input_mb": source.stat().st_size / 1e6,
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "output_mb": out_bytes / 1e6,
    }


def _pyarrow(source: Path, work: Path) -> tuple[_Clock, int]:
    import pyarrow.json as pj

    clock = _Clock()
    pj.read_json(source)
    clock.stop()
    return clock, 0


# The sales_order source columns as DuckDB reads them (explicit, no sniffing).
_DUCKDB_COLUMNS = {
    "sales_order_id": "INTEGER", "created_at": "TIMESTAMP", "last_updated": "TIMESTAMP",
    "design_id": "INTEGER", "staff_id": "INTEGER", "counterparty_id": "INTEGER",
    "units_sold": "INTEGER", "unit_price": "DECIMAL(10,2)", "currency_id": "INTEGER",
    "agreed_delivery_date": "DATE", "agreed_payment_date": "DATE",
    "agreed_delivery_location_id": "INTEGER",
}
_DUCKDB_FACT = """
COPY (
    SELECT sales_order_id,
           CAST(created_at AS DATE) AS created_date, CAST(created_at AS TIME) AS created_time,
           CAST(last_updated AS DATE) AS last_updated_date, CAST(last_updated AS TIME) AS last_updated_time,
           staff_id AS sales_staff_id, counterparty_id, units_sold,
           CAST(unit_price AS DECIMAL(10, 2)) AS unit_price, currency_id, design_id,
           agreed_payment_date, agreed_delivery_date, agreed_delivery_location_id
    FROM read_json(?, format = 'newline_delimited', columns = {columns})
) TO '{out}' (FORMAT parquet, COMPRESSION snappy)
"""


def _duckdb(source: Path, work: Path) -> tuple[_Clock, int]:
    import duckdb

    out = work / "fact.parquet"
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in _DUCKDB_COLUMNS.items()) + "}"
    clock = _Clock()
    with duckdb.connect() as con:
        con.execute(_DUCKDB_FACT.format(columns=columns, out=out), [str(source)])
    clock.stop()
    return clock, out.stat().st_size


def _duckdb_parse(source: Path, work: Path) -> tuple[_Clock, int]:
    import duckdb
    import pyarrow as pa

    from runtime.reading import read_schema
    from runtime.tables import SOURCES

    duck = {"double": "DOUBLE", "string": "VARCHAR", "timestamp[us]": "TIMESTAMP"}
    columns = {
        f.name: f"DECIMAL({f.type.precision},{f.type.scale})" if str(f.type).startswith("decimal")
        else duck[str(f.type)]
        for f in read_schema(SOURCES["sales_order"])
    }
    clock = _Clock()
    with duckdb.connect() as con:
        result = con.read_json(str(source), format="newline_delimited", columns=columns).arrow()
        if isinstance(result, pa.RecordBatchReader):  # DuckDB 2 hands back a lazy reader
            result.read_all()
    clock.stop()
    return clock, 0


def _pandas(source: Path, work: Path) -> tuple[_Clock, int]:
    import pandas as pd

    clock = _Clock()
    frame = pd.read_json(source, lines=True)
    for column, name in (("created_at", "created"), ("last_updated", "last_updated")):
        stamps = pd.to_datetime(frame[column], format="ISO8601")
        frame[f"{name}_date"] = stamps.dt.date
        frame[f"{name}_time"] = stamps.dt.time
    frame = frame.drop(columns=["created_at", "last_updated"])
    frame.to_parquet(work / "fact.parquet")
    clock.stop()
    return clock, (work / "fact.parquet").stat().st_size


def _ours(source: Path, work: Path) -> tuple[_Clock, int]:
    from runtime.events import parse_event
    from runtime.observability import Metrics, logger
    from runtime.pipeline import Pipeline
    from runtime.tables import DEFAULT_SSM_PREFIX, packet_id_parameters
    from sandbox.local_store import LocalDirectory, MemoryPacketIds
    from sandbox.seed import fixture_lines, packet_key

    logger.setLevel("WARNING")
    ingestion, processed = LocalDirectory(work / "ingestion"), LocalDirectory(work / "processed")
    for table in DIMENSIONS:
        lines = fixture_lines(table)
        ingestion.put_if_absent(packet_key(table, 1, lines), b"".join(lines), {})
    target = ingestion.root / PACKET_KEY
    target.parent.mkdir(parents=True)
    os.link(source, target)  # no copy of a large file
    ids = MemoryPacketIds(packet_id_parameters(DEFAULT_SSM_PREFIX))
    pipeline = Pipeline(ingestion, processed, ids, DEFAULT_SSM_PREFIX, Metrics(stream=open(os.devnull, "w")))
    pipeline.run(parse_event({"packets": [{"table": t, "id": 1} for t in DIMENSIONS]}))
    clock = _Clock()
    pipeline.run(parse_event({"packets": [{"table": "sales_order", "id": 1}]}))
    clock.stop()
    written = sum(p.stat().st_size for t in ("fact_sales_order", "dim_date") for p in (processed.root / t).glob("*"))
    return clock, written


def _ours_s3(source: Path, work: Path) -> tuple[_Clock, int]:
    import boto3

    from runtime import handler
    from runtime.observability import logger
    from sandbox.emulator import moto_server
    from sandbox.seed import LocalStack, create_resources, fixture_lines, upload_packet

    logger.setLevel("WARNING")
    with moto_server() as server:
        names = LocalStack()
        os.environ.update({**server.env(), **names.env(), "LOG_LEVEL": "WARNING"})
        s3, ssm = boto3.client("s3"), boto3.client("ssm")
        create_resources(s3, ssm, names)
        for table in DIMENSIONS:
            upload_packet(s3, names.ingestion_bucket, table, 1, fixture_lines(table))
        s3.upload_file(str(source), names.ingestion_bucket, PACKET_KEY)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # EMF lines
            handler.lambda_handler({"packets": [{"table": t, "id": 1} for t in DIMENSIONS]}, None)
            clock = _Clock()
            handler.lambda_handler({"packets": [{"table": "sales_order", "id": 1}]}, None)
            clock.stop()
        written = sum(
            o["Size"]
            for t in ("fact_sales_order/", "dim_date/")
            for o in s3.list_objects_v2(Bucket=names.processed_bucket, Prefix=t).get("Contents", [])
        )
        return clock, written


_MEASURES = {
    "ours": _ours, "ours+S3": _ours_s3, "duckdb": _duckdb, "pyarrow": _pyarrow,
    "duckdb-parse": _duckdb_parse, "pandas": _pandas,
}


# -- the driver -----------------------------------------------------------------


def run_one(kind: str, rows: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.bench", "--measure", kind, "--rows", str(rows)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} on {rows:,} rows failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_time(repeat: int) -> float:
    code = "import time; t = time.perf_counter(); import runtime.handler; print(time.perf_counter() - t)"
    times = [
        float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    ]
    return statistics.median(times)


def profile(rows: int) -> int:
    """Where the time of our path goes, function by function (internal time)."""
    import cProfile
    import pstats

    source = packet(rows)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        profiler = cProfile.Profile()
        profiler.enable()
        clock, _ = _ours(source, Path(work))
        profiler.disable()
    print(f"{rows:,} rows in {clock.wall:.2f} s (under the profiler, setup included below)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the processing path")
    parser.add_argument("--sizes", default="100000,1000000,5000000", help="sales_order rows per packet")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (medians are shown)")
    parser.add_argument("--kinds", default=",".join(_MEASURES), help="which measurements (default: all)")
    parser.add_argument("--profile", type=int, metavar="ROWS",
                        help="instead: profile our path on a packet of ROWS rows (cProfile, top functions)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.rows)))
        return 0
    if args.profile:
        return profile(args.profile)

    sizes = [int(s) for s in args.sizes.split(",")]
    reference = 1_000_000 if 1_000_000 in sizes else sizes[len(sizes) // 2]
    kinds = args.kinds.split(",")
    plan = [("ours", n) for n in sizes if "ours" in kinds] + [
        (kind, reference) for kind in _MEASURES if kind != "ours" and kind in kinds
    ]
    say(f"benchmark: {len(plan)} measurements x {args.repeat} runs, interleaved, each in a fresh process")
    for n in sizes:
        packet(n)
    loads = [os.getloadavg()[0]]
    runs: dict[tuple[str, int], list[dict]] = {m: [] for m in plan}
    for i in range(args.repeat):
        for kind, n in plan:
            say(f"  run {i + 1}/{args.repeat}  {kind:<12} {n:>10,} rows ...")
            runs[(kind, n)].append(run_one(kind, n))
            loads.append(os.getloadavg()[0])
    results = []
    for (kind, n), done in runs.items():
        results.append({
            **done[0],
            "wall_s": statistics.median(r["wall_s"] for r in done),
            "cpu_s": statistics.median(r["cpu_s"] for r in done),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in done),
            "runs": [round(r["wall_s"], 2) for r in done],
        })

    print(f"\nload average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}, "
          f"median {statistics.median(loads):.1f} ({os.cpu_count()} cores)")
    print(f"\n{'what':<13}{'rows':>11}{'input MB':>10}{'wall s':>8}{'CPU s':>8}{'rows/s':>12}"
          f"{'peak RSS MB':>13}{'output MB':>11}   runs (s)")
    for r in results:
        print(
            f"{r['kind']:<13}{r['rows']:>11,}{r['input_mb']:>10.0f}{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}"
            f"{r['rows'] / r['wall_s']:>12,.0f}{r['peak_rss_mb']:>13.0f}{r['output_mb']:>11.1f}   {r['runs']}"
        )
    by_kind = {(r["kind"], r["rows"]): r for r in results}
    ours_ref, bare_ref = by_kind.get(("ours", reference)), by_kind.get(("pyarrow", reference))
    if ours_ref and bare_ref:
        pairs = zip(runs[("ours", reference)], runs[("pyarrow", reference)])
        paired = statistics.median(o["wall_s"] / b["wall_s"] for o, b in pairs)
        print(f"\non {reference:,} rows, ours / the bare pyarrow parse: {paired:.2f}x the wall time (median of "
              f"{args.repeat} side-by-side pairs; {ours_ref['wall_s'] / bare_ref['wall_s']:.2f}x the medians), "
              f"{ours_ref['cpu_s'] / bare_ref['cpu_s']:.2f}x the CPU time (target: at most 1.5x)")
    if ("ours", 5_000_000) in by_kind:
        print(f"5,000,000 rows: peak RSS {by_kind[('ours', 5_000_000)]['peak_rss_mb']:.0f} MB (target: at most 650 MB)")
    pandas, duck = by_kind.get(("pandas", reference)), by_kind.get(("duckdb", reference))
    if ours_ref and pandas:
        print(f"ours is {pandas['wall_s'] / ours_ref['wall_s']:.1f}x faster than the pandas approach")
    if ours_ref and duck:
        print(f"ours / DuckDB's whole fact path: {ours_ref['wall_s'] / duck['wall_s']:.1f}x the wall time, "
              f"{ours_ref['peak_rss_mb'] / duck['peak_rss_mb']:.1f}x the peak RSS")
        for kind in ("pyarrow", "duckdb-parse"):
            if (kind, reference) in by_kind:
                print(f"the bare parse alone, {kind}: {by_kind[(kind, reference)]['wall_s'] / duck['wall_s']:.1f}x "
                      f"DuckDB's whole fact path")
    print(f"handler import (cold start): {import_time(5):.2f} s, median of 5 fresh processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
