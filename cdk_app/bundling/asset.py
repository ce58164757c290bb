"""The function's code as a CDK asset: built locally (never in Docker), hashed before it is built.

CDK calls `LocalPipBundling.try_bundle` through `BundlingOptions(local=...)`; the Docker
image named beside it is required by the API and never pulled.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from cdk_app.bundling.build import build_bundle
from cdk_app.bundling.bytecode import Bytecode
from cdk_app.lambda_platform import Target
from cdk_app.paths import PIP_CACHE_DIR, RUNTIME_DIR


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundling:
    """CDK's local bundling hook: builds the asset on this machine, never in Docker."""

    def __init__(self, *, target: Target, bytecode: Bytecode, runtime_dir: Path, cache_dir: Path) -> None:
        self._target = target
        self._bytecode = bytecode
        self._runtime_dir = runtime_dir
        self._cache_dir = cache_dir

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: object) -> bool:
        build_bundle(Path(output_dir), target=self._target, bytecode=self._bytecode,
                     runtime_dir=self._runtime_dir, cache_dir=self._cache_dir,
                     log=lambda line: print(line, file=sys.stderr))  # fmt: skip
        return True  # never fall back to Docker: a failure above raises instead


def asset_hash(*, target: Target, bytecode: Bytecode, runtime_dir: Path = RUNTIME_DIR) -> str:
    """Everything that changes the asset's bytes, hashed before building it.

    runtime/ (its sources, requirements.txt and the lock files), the target platform,
    the compiler's version and mode (or no bytecode), and the bundler's own source. CDK
    reuses a staged asset whose hash matches, so anything missing here would ship a stale
    asset (say, one without bytecode after Python 3.12 was installed).
    """
    digest = hashlib.sha256()
    for part in (str(target), bytecode.fingerprint):
        digest.update(part.encode() + b"\0")
    bundler = Path(__file__).parent
    for module in [*sorted(bundler.glob("*.py")), bundler.parent / "interpreter.py", bundler.parent / "lambda_platform.py"]:
        digest.update(module.name.encode() + b"\0" + module.read_bytes() + b"\0")
    digest.update(tree_digest(runtime_dir, bytecode=False).encode())
    return digest.hexdigest()


def tree_digest(root: Path, *, bytecode: bool = True) -> str:
    """sha256 over every file's relative path, mode bits and bytes (`bytecode` False skips .pyc)."""
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if not bytecode and (path.suffix == ".pyc" or "__pycache__" in path.parts):
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def bundled_code(
    *,
    runtime: lambda_.Runtime,
    architecture: lambda_.Architecture,
    bytecode: Bytecode,
    runtime_dir: Path = RUNTIME_DIR,
    cache_dir: Path = PIP_CACHE_DIR,
) -> lambda_.Code:
    """The function's code: runtime/ and its locked dependencies, bundled for the function's platform."""
    target = Target.for_lambda(runtime, architecture)
    return lambda_.Code.from_asset(
        str(runtime_dir),
        asset_hash=asset_hash(target=target, bytecode=bytecode, runtime_dir=runtime_dir),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Required by the API; local bundling always succeeds or raises, so it is
            # never pulled or run.
            image=cdk.DockerImage.from_registry("local-bundling-only"),
            local=LocalPipBundling(target=target, bytecode=bytecode, runtime_dir=runtime_dir,
                                   cache_dir=cache_dir),  # fmt: skip
        ),
    )


def unbundled_code(*, runtime_dir: Path = RUNTIME_DIR) -> lambda_.Code:
    """runtime/ as it is, without dependencies: for template tests, never for deployment."""
    return lambda_.Code.from_asset(str(runtime_dir), exclude=["__pycache__", "*.pyc"])
