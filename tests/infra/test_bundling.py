"""The real Lambda asset (arm64, Python 3.12), built through CDK as `make synth` builds it.

Downloads wheels from PyPI on the first run (cached under .cache/pip afterwards), and
needs a Python 3.12 on the machine (PATH, pyenv or uv) to compile the bytecode.
Run with `pytest -s` to see the sizes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import app as entry
from cdk_app import bundling
from cdk_app.bundling import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    SDK_SERVICES,
    BundlingError,
    Bytecode,
    asset_hash,
    build_bundle,
    check_links,
    resolve_bytecode,
    tree_size,
)
from cdk_app.interpreter import Interpreter
from cdk_app.lambda_platform import Target
from cdk_app.bundling.lock import LOCKED_TARGETS, checked_lock, lock_path, locked_versions, write_lock
from sandbox.cold_start import zip_like_cdk
from tests.infra.conftest import make_app

ROOT = Path(entry.__file__).resolve().parent

PYC_HEADERS = r"""
import importlib.util, json, pathlib, sys
out = {}
for source in map(pathlib.Path, sys.argv[1:]):
    pyc = pathlib.Path(importlib.util.cache_from_source(source)).read_bytes()
    out[str(source)] = [pyc[:4] == importlib.util.MAGIC_NUMBER, int.from_bytes(pyc[4:8], "little"),
                        pyc[8:16] == importlib.util.source_hash(source.read_bytes())]
print(json.dumps(out))
"""

EM_AARCH64 = 183


@pytest.fixture(scope="module")
def asset(tmp_path_factory) -> Path:
    """Synthesize the default deployment with bundling on; return the function's asset dir."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = make_app({"bundle": True}, outdir=outdir)
    stack = entry.build(app)
    app.synth()
    manifest = json.loads((outdir / f"{stack.artifact_id}.assets.json").read_text())
    (source,) = [f["source"] for f in manifest["files"].values() if f["source"].get("packaging") == "zip"]
    return outdir / source["path"]


def test_asset_fits_lambda_unzipped_limit_with_room_to_spare(asset, tmp_path):
    unzipped = tree_size(asset)
    zipped = zip_like_cdk(asset, tmp_path / "asset.zip").stat().st_size
    headroom = LAMBDA_UNZIPPED_LIMIT_BYTES - unzipped
    print(
        f"\narm64 py3.12 asset: {unzipped:,} bytes unzipped ({unzipped / 1e6:.1f} MB), "
        f"{zipped:,} bytes zipped ({zipped / 1e6:.1f} MB); limit "
        f"{LAMBDA_UNZIPPED_LIMIT_BYTES:,} bytes unzipped, headroom {headroom / 1e6:.1f} MB"
    )
    # At least a tenth of the limit free: room for a dependency upgrade.
    assert headroom > LAMBDA_UNZIPPED_LIMIT_BYTES // 10


def test_every_module_has_hash_based_bytecode_of_the_runtime_python(asset):
    sources = sorted(asset.rglob("*.py"))
    assert len(sources) > 1000
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.cpython-312.pyc").is_file()]
    assert missing == []
    sample = [str(p) for p in sources[:: max(1, len(sources) // 50)] + [asset / "runtime" / "handler.py"]]
    # Python 3.12 itself reads the headers: its magic number, the PEP 552 flags (hash-based,
    # unchecked: 0b01), and the source hash it would compute.
    python = resolve_bytecode(Target("3.12", "aarch64"), required=True).interpreter.path
    check = subprocess.run([python, "-c", PYC_HEADERS, *sample], capture_output=True, text=True, check=True)
    assert json.loads(check.stdout) == {path: [True, 1, True] for path in sample}
    # File names inside the bytecode point at /var/task, not at the build folder.
    assert b"/var/task/runtime/handler.py" in (asset / "runtime" / "__pycache__" / "handler.cpython-312.pyc").read_bytes()


def test_every_package_in_the_asset_is_pinned_by_the_lock(asset):
    lock = lock_path(ROOT / "runtime", Target("3.12", "aarch64"))
    pins = locked_versions(lock)
    installed = {}
    for metadata in asset.glob("*.dist-info/METADATA"):
        fields = dict(line.split(": ", 1) for line in metadata.read_text().splitlines()[:3] if ": " in line)
        installed[fields["Name"].lower().replace("_", "-").replace(".", "-")] = fields["Version"]
    assert installed == pins
    # The direct dependencies are there with the versions requirements.txt names.
    for line in (ROOT / "runtime" / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert pins[name.lower()] == version, name
    assert all("--hash=sha256:" in line for line in lock.read_text().splitlines() if not line.startswith("#"))


def test_locks_are_fresh_for_every_function_platform():
    for target in LOCKED_TARGETS:
        assert checked_lock(ROOT / "runtime", target).is_file()


def test_a_changed_requirements_file_needs_a_new_lock(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "requirements.txt").write_text("six==1.17.0\n")
    target = Target("3.12", "aarch64")
    with pytest.raises(BundlingError, match="is missing: run `make lock`"):
        build_bundle(tmp_path / "out", target=target, bytecode=Bytecode(None), runtime_dir=runtime)
    write_lock(runtime, target)
    assert locked_versions(lock_path(runtime, target)) == {"six": "1.17.0"}
    (runtime / "requirements.txt").write_text("six==1.16.0\n")
    with pytest.raises(BundlingError, match="was made from another requirements.txt: run `make lock`"):
        build_bundle(tmp_path / "out2", target=target, bytecode=Bytecode(None), runtime_dir=runtime)


def test_botocore_keeps_only_the_models_of_the_services_the_runtime_calls(asset):
    kept = sorted(p.name for p in (asset / "botocore" / "data").iterdir() if p.is_dir())
    assert kept == sorted(SDK_SERVICES)
    called = set()
    for module in (ROOT / "runtime").rglob("*.py"):
        if module.name != "operations.py":  # the operator's command runs on a laptop, not in Lambda
            called |= set(re.findall(r"""\.(?:create_)?client\(\s*["']([a-z0-9-]+)["']""", module.read_text()))
    assert called and called <= set(SDK_SERVICES), called


def test_the_same_inputs_build_the_same_bytes(tmp_path):
    target = Target("3.12", os.uname().machine)
    bytecode = resolve_bytecode(target, required=True)
    first = build_bundle(tmp_path / "one", target=target, bytecode=bytecode, log=lambda _: None)
    build_bundle(tmp_path / "two", target=target, bytecode=bytecode, log=lambda _: None)
    assert first.compiled_modules > 1000
    assert bundling.tree_digest(tmp_path / "one") == bundling.tree_digest(tmp_path / "two")


def test_the_asset_hash_changes_with_everything_that_changes_the_bytes(tmp_path):
    runtime = tmp_path / "runtime"
    shutil.copytree(ROOT / "runtime", runtime, ignore=shutil.ignore_patterns("__pycache__"))
    arm = Target("3.12", "aarch64")
    compiled = Bytecode(Interpreter("/x/python3.12", "3.12.1", "pyenv"))
    base = asset_hash(target=arm, bytecode=compiled, runtime_dir=runtime)
    assert asset_hash(target=arm, bytecode=compiled, runtime_dir=runtime) == base
    # Where the compiler lives does not change the bytes; its version, or none, does.
    assert asset_hash(target=arm, bytecode=Bytecode(Interpreter("/y/python3.12", "3.12.1", "uv")),
                      runtime_dir=runtime) == base  # fmt: skip
    variants = {
        "no bytecode": asset_hash(target=arm, bytecode=Bytecode(None), runtime_dir=runtime),
        "other patch version": asset_hash(target=arm, bytecode=Bytecode(Interpreter("/x", "3.12.9", "PATH")),
                                          runtime_dir=runtime),  # fmt: skip
        "checked hash": asset_hash(target=arm, bytecode=Bytecode(compiled.interpreter, "checked-hash"),
                                   runtime_dir=runtime),  # fmt: skip
        "x86_64": asset_hash(target=Target("3.12", "x86_64"), bytecode=compiled, runtime_dir=runtime),
    }
    lock = lock_path(runtime, arm)
    lock.write_text(lock.read_text().replace("six==1.17.0", "six==1.16.0"))
    variants["lock"] = asset_hash(target=arm, bytecode=compiled, runtime_dir=runtime)
    (runtime / "handler.py").write_text((runtime / "handler.py").read_text() + "\n# changed\n")
    variants["source"] = asset_hash(target=arm, bytecode=compiled, runtime_dir=runtime)
    assert len({base, *variants.values()}) == len(variants) + 1, variants


def test_asset_is_the_runtime_package_with_arm64_py312_dependencies(asset):
    assert (asset / "runtime" / "handler.py").is_file()
    assert (asset / "runtime" / "tables.py").is_file()
    assert not (asset / "runtime" / "requirements.txt").exists()
    for package in ("pandas", "pyarrow", "pandera", "pycountry", "aws_lambda_powertools", "boto3", "numpy"):
        assert (asset / package / "__init__.py").is_file(), package
    (core,) = (asset / "pyarrow").glob("lib.cpython-312-aarch64-linux-gnu.so")
    machine = struct.unpack_from("<H", core.read_bytes(), 18)[0]
    assert machine == EM_AARCH64


def test_unused_parts_are_trimmed_and_needed_ones_kept(asset):
    pyarrow = asset / "pyarrow"
    assert not list(pyarrow.glob("*flight*"))
    assert not list(pyarrow.glob("libarrow_s3.so*"))
    assert not list(asset.rglob("tests"))
    assert not list(asset.rglob("*.pyi"))
    assert not list(asset.rglob("*.h"))
    assert not (asset / "pycountry" / "locales").exists()
    assert not (asset / "bin").exists()
    # Only the SONAME copy of each library stays.
    assert [p.name for p in pyarrow.glob("libarrow_python.so*")] == ["libarrow_python.so.2600"]
    # Linked by libarrow_python, which `import pyarrow` loads: must stay.
    for library in ("libarrow_substrait", "libarrow_dataset", "libarrow_acero", "libparquet"):
        assert list(pyarrow.glob(f"{library}.so.*")), library
    # importlib.metadata still finds the distributions.
    assert list(asset.glob("pandas-*.dist-info/METADATA"))
    # No bytecode of the build machine's Python.
    assert not [p for p in asset.rglob("*.pyc") if ".cpython-312" not in p.name]


def test_every_bundled_library_finds_what_it_links_against(asset, tmp_path):
    check_links(asset)  # as the build did
    broken = tmp_path / "broken"
    shutil.copytree(asset / "pyarrow", broken / "pyarrow",
                    ignore=shutil.ignore_patterns("libarrow_substrait.so*", "*.py", "parquet", "interchange"))  # fmt: skip
    with pytest.raises(BundlingError, match=r"libarrow_substrait\.so\.2600 \(needed by"):
        check_links(broken)


def test_synthesis_fails_clearly_at_the_size_limit(tmp_path, monkeypatch):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "handler.py").write_text("def lambda_handler(event, context):\n    return event\n")
    (runtime / "requirements.txt").write_text("six==1.17.0\n")
    write_lock(runtime, Target("3.12", "aarch64"))
    monkeypatch.setattr(bundling.build, "LAMBDA_UNZIPPED_LIMIT_BYTES", 10_000)
    with pytest.raises(BundlingError, match=r"would be [\d,]+ bytes unzipped, at or over Lambda's limit"):
        build_bundle(tmp_path / "out", target=Target("3.12", "aarch64"), bytecode=Bytecode(None), runtime_dir=runtime)


def test_pip_targets_every_manylinux_tag_the_lambda_platform_loads():
    args = Target("3.12", "aarch64").pip_platform_args()
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert "manylinux2014_aarch64" in platforms
    assert "manylinux_2_28_aarch64" in platforms  # current pyarrow and numpy wheels
    assert "manylinux_2_34_aarch64" in platforms  # Amazon Linux 2023's glibc
    assert "manylinux_2_35_aarch64" not in platforms
    assert args[args.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in args
    assert Target("3.12", "x86_64").pip_platform_args()[1] == "manylinux2014_x86_64"


def test_wheels_are_cached_under_dot_cache(asset):
    assert bundling.PIP_CACHE_DIR == Path(entry.__file__).resolve().parent / ".cache" / "pip"
    assert ".cache/" in (Path(entry.__file__).resolve().parent / ".gitignore").read_text().split()
    assert os.path.isdir(bundling.PIP_CACHE_DIR)
