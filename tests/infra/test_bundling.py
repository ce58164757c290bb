"""The real Lambda asset (arm64, Python 3.12), built through CDK as `make synth` builds it.

Downloads wheels from PyPI on the first run (cached under .cache/pip afterwards).
Run with `pytest -s` to see the sizes.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

import app as entry
from cdk_app import bundling
from cdk_app.bundling import LAMBDA_UNZIPPED_LIMIT_BYTES, BundlingError, Target, build_bundle, check_links, tree_size
from tests.infra.conftest import make_app

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


def _zip_size(directory: Path, target: Path) -> int:
    """Zip as the CDK CLI does before upload (deflate, fixed timestamps)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (path.stat().st_mode & 0xFFFF) << 16
            archive.writestr(info, path.read_bytes())
    return target.stat().st_size


def test_asset_fits_lambda_unzipped_limit(asset, tmp_path):
    unzipped = tree_size(asset)
    zipped = _zip_size(asset, tmp_path / "asset.zip")
    print(
        f"\narm64 py3.12 asset: {unzipped:,} bytes unzipped ({unzipped / 1e6:.1f} MB), "
        f"{zipped:,} bytes zipped ({zipped / 1e6:.1f} MB); "
        f"limit {LAMBDA_UNZIPPED_LIMIT_BYTES:,} bytes unzipped"
    )
    assert unzipped < LAMBDA_UNZIPPED_LIMIT_BYTES


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
    monkeypatch.setattr(bundling, "LAMBDA_UNZIPPED_LIMIT_BYTES", 10_000)
    with pytest.raises(BundlingError, match=r"would be [\d,]+ bytes unzipped, at or over Lambda's limit"):
        build_bundle(tmp_path / "out", target=Target("3.12", "aarch64"), runtime_dir=runtime)


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
