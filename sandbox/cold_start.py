"""Cold start of the built asset, as Lambda would run it: `make bench`'s cold-start rows.

The asset is built by the same bundler and lock as the deployed one, for this machine's
CPU (an arm64 asset's libraries cannot load on an x86_64 build machine; the pins, trims
and bytecode are the same), zipped as the CDK CLI zips it (every entry stamped
1980-01-01), unzipped into a read-only folder (Lambda's /var/task is read-only), and run
by the runtime's Python version with nothing else on its path (`-S -s -P`, PYTHONPATH =
that folder) and `-B`: nothing is written back (a build user may be root, whom file modes
do not stop; on Lambda the folder is read-only), so every run is as cold as the first. Each run is a fresh process against moto's server on fresh resources:
import `runtime.handler`, process one small event (currency packet 1), done. The figure
is the median of the runs, import and first event together (docs/design.md#performance: an import moved
into the first call is still counted).

Each run also counts the asset modules the interpreter compiled from source instead of
loading their bytecode, by wrapping `SourceLoader.source_to_code` (only called when no
usable .pyc exists): 0 with bytecode, about a thousand without.

    python -m sandbox.cold_start [--runs 5] [--no-compare]
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "cold_start"
SMALL_EVENT = {"packets": [{"table": "currency", "id": 1}]}
TARGET_SECONDS = 1.0
# The one timestamp the CDK CLI gives every entry of an asset zip.
CDK_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

# Run by the runtime's Python inside the unzipped asset. Prints one JSON line.
RUN_COLD = r"""
import importlib._bootstrap_external as external, json, sys, time
started = time.perf_counter()
cpu_started = time.process_time()
asset = sys.argv[1]
compiled = []
_original = external.SourceLoader.source_to_code
def _counting(self, data, path, *args, **kwargs):
    if str(path).startswith(asset):
        compiled.append(str(path))
    return _original(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = _counting
from runtime.handler import lambda_handler
imported = time.perf_counter()
result = lambda_handler(json.loads(sys.argv[2]), None)
done = time.perf_counter()
cpu = time.process_time() - cpu_started
outside = sorted({m.__file__ for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and not m.__file__.startswith((asset, sys.base_prefix))})
print(json.dumps({"import_s": imported - started, "event_s": done - imported, "total_s": done - started,
                  "cpu_s": cpu,
                  "compiled_from_source": compiled, "status": result["status"],
                  "rows_written": result["rows_written"], "outside": outside,
                  "python": sys.version.split()[0]}))
"""


def zip_like_cdk(directory: Path, archive: Path) -> Path:
    """Zip `directory` as the CDK CLI does before upload: deflate, one fixed 1980 timestamp."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=CDK_ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (path.stat().st_mode & 0xFFFF) << 16
            out.writestr(info, path.read_bytes())
    return archive


def unzip_read_only(archive: Path, directory: Path) -> Path:
    """Unzip keeping each entry's 1980 timestamp and mode, then make the tree read-only."""
    directory = Path(directory)
    if directory.exists():
        make_writable(directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    with zipfile.ZipFile(archive) as source:
        for info in source.infolist():
            target = directory / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read(info))
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            target.chmod(mode)
            seconds = calendar.timegm((*info.date_time, 0, 0, 0))
            os.utime(target, (seconds, seconds))
    for path in [directory, *directory.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return directory


def make_writable(directory: Path) -> None:
    for path in [Path(directory), *Path(directory).rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def without_bytecode(asset: Path, copy: Path) -> Path:
    """The same asset with every .pyc removed (what a build without bytecode ships)."""
    if copy.exists():
        make_writable(copy)
        shutil.rmtree(copy)
    shutil.copytree(asset, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@dataclass(frozen=True)
class ColdRun:
    import_s: float
    event_s: float
    total_s: float
    cpu_s: float  # CPU time of the process (all threads): less sensitive to a busy machine
    compiled_from_source: tuple[str, ...]
    status: str
    rows_written: dict
    outside: tuple[str, ...]
    python: str


def run_cold(python: str, asset: Path, env: dict[str, str], event: dict = SMALL_EVENT) -> ColdRun:
    """One fresh process of `python` importing the handler from `asset` and handling `event`."""
    process = subprocess.run(
        [python, "-B", "-S", "-s", "-P", "-c", RUN_COLD, str(asset), json.dumps(event)],
        env={**env, "PYTHONPATH": str(asset), "PYTHONNOUSERSITE": "1"},
        cwd=asset, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if process.returncode != 0:
        raise RuntimeError(f"cold run failed ({process.returncode}):\n{process.stderr[-4000:]}")
    values = json.loads(process.stdout.strip().splitlines()[-1])
    return ColdRun(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def cold_runs(python: str, asset: Path, runs: int) -> list[ColdRun]:
    """`runs` fresh processes, each against freshly created resources on moto's server."""
    import boto3

    from sandbox.emulator import moto_server
    from sandbox.seed import LocalStack, create_resources, fixture_lines, upload_packet

    names = LocalStack()
    results = []
    with moto_server() as server:
        aws = server.env()
        session = boto3.session.Session(aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
                                        region_name=aws["AWS_DEFAULT_REGION"])  # fmt: skip
        for _ in range(runs):
            server.reset()
            s3 = session.client("s3", endpoint_url=server.endpoint)
            ssm = session.client("ssm", endpoint_url=server.endpoint)
            create_resources(s3, ssm, names)
            upload_packet(s3, names.ingestion_bucket, "currency", 1, fixture_lines("currency"))
            env = {"PATH": os.environ.get("PATH", ""), **aws, **names.env(), "LOG_LEVEL": "WARNING"}
            results.append(run_cold(python, asset, env))
    return results


def built_asset() -> tuple[Path, str]:
    """The asset for this machine's CPU (cached by its asset hash), and the interpreter."""
    from cdk_app.bundling import asset_hash, build_bundle, resolve_bytecode
    from cdk_app.lambda_platform import Target
    from cdk_app.processing_function import LAMBDA_RUNTIME

    target = Target(LAMBDA_RUNTIME.name.removeprefix("python"), os.uname().machine)
    bytecode = resolve_bytecode(target, required=True)
    assert bytecode.interpreter is not None
    folder = CACHE / f"asset-{asset_hash(target=target, bytecode=bytecode)[:16]}"
    if not (folder / "runtime" / "handler.py").is_file():
        if folder.exists():
            shutil.rmtree(folder)
        build_bundle(folder, target=target, bytecode=bytecode, log=lambda line: print(line, file=sys.stderr))
    return folder, bytecode.interpreter.path


def measure(runs: int, compare: bool) -> list[dict]:
    asset, python = built_asset()
    variants = [("bytecode", asset)]
    if compare:
        variants.append(("no bytecode", without_bytecode(asset, CACHE / "no-bytecode")))
    rows = []
    for name, folder in variants:
        archive = zip_like_cdk(folder, CACHE / f"{name.replace(' ', '-')}.zip")
        unzipped = unzip_read_only(archive, CACHE / f"unzipped-{name.replace(' ', '-')}")
        results = cold_runs(python, unzipped, runs)
        rows.append({
            "variant": name,
            "runs": [round(r.total_s, 2) for r in results],
            "median_s": statistics.median(r.total_s for r in results),
            "median_import_s": statistics.median(r.import_s for r in results),
            "median_event_s": statistics.median(r.event_s for r in results),
            "median_cpu_s": statistics.median(r.cpu_s for r in results),
            "compiled_from_source": max(len(r.compiled_from_source) for r in results),
            "python": results[0].python,
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cold start of the built asset")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per variant (the median is shown)")
    parser.add_argument("--no-compare", action="store_true", help="skip the run without bytecode")
    args = parser.parse_args(argv)
    rows = measure(args.runs, compare=not args.no_compare)
    print(f"\ncold start: import runtime.handler + one small event, from the unzipped asset "
          f"({os.uname().machine}), Python {rows[0]['python']}, median of {args.runs} fresh processes; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'variant':<12} {'median s':>9} {'import s':>9} {'event s':>8} {'CPU s':>6} {'compiled':>9}  runs (s)")
    for row in rows:
        print(f"{row['variant']:<12} {row['median_s']:>9.2f} {row['median_import_s']:>9.2f} "
              f"{row['median_event_s']:>8.2f} {row['median_cpu_s']:>6.2f} {row['compiled_from_source']:>9}  "
              f"{row['runs']}")  # fmt: skip
    verdict = "within" if rows[0]["median_s"] <= TARGET_SECONDS else "OVER"
    print(f"target <= {TARGET_SECONDS:.1f} s with bytecode: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
