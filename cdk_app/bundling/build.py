"""One build of the asset: install the lock's wheels, trim, check links, compile, measure.

The asset is the lock file for the function's platform (every package pinned with its
sha256) installed from wheels built for that platform, plus `runtime/` itself as the
package `runtime`, so the handler resolves from the asset root (/var/task). Nothing is
compiled from C: `--only-binary=:all:` takes wheels only, so any machine with Python and
pip can build an arm64 asset. It refuses to produce an asset that would reach Lambda's
250 MB unzipped limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdk_app.bundling.bytecode import Bytecode, compile_bytecode, resolve_bytecode
from cdk_app.bundling.elf import check_links
from cdk_app.bundling.errors import BundlingError
from cdk_app.bundling.lock import LockError, checked_lock
from cdk_app.bundling.trim import (
    TRIM_RULES,
    matches,
    remove,
    remove_duplicate_libraries,
    tree_size,
    unused_sdk_models,
)
from cdk_app.lambda_platform import Target
from cdk_app.paths import PIP_CACHE_DIR, RUNTIME_DIR

# Lambda's quota for a function's unzipped code and layers: 250 MB, in bytes.
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000


@dataclass
class BundleReport:
    """What a build did, for logs and tests."""

    target: Target
    installed_bytes: int = 0
    trimmed_bytes: dict[str, int] = field(default_factory=dict)
    duplicate_library_bytes: int = 0
    bytecode: str = ""
    compiled_modules: int = 0
    unzipped_bytes: int = 0
    files: int = 0
    seconds: float = 0.0

    @property
    def headroom_bytes(self) -> int:
        return LAMBDA_UNZIPPED_LIMIT_BYTES - self.unzipped_bytes

    def summary(self) -> str:
        trimmed = sum(self.trimmed_bytes.values()) + self.duplicate_library_bytes
        return (
            f"bundle {self.target}: {_mb(self.unzipped_bytes)} unzipped in {self.files} files "
            f"(installed {_mb(self.installed_bytes)}, trimmed {_mb(trimmed)}; limit "
            f"{_mb(LAMBDA_UNZIPPED_LIMIT_BYTES)}, headroom {_mb(self.headroom_bytes)}); "
            f"{self.bytecode}; {self.seconds:.1f} s"
        )


def build_bundle(
    output_dir: Path,
    *,
    target: Target,
    bytecode: Bytecode | None = None,
    runtime_dir: Path = RUNTIME_DIR,
    cache_dir: Path = PIP_CACHE_DIR,
    log: Callable[[str], None] = print,
) -> BundleReport:
    """Install, trim, compile, check and measure the asset in `output_dir` (which must be empty).

    `bytecode` None finds the compiler itself and fails without one.
    """
    started = time.monotonic()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise BundlingError(f"{output_dir} is not empty")
    if bytecode is None:
        bytecode = resolve_bytecode(target, required=True)
    try:
        lock = checked_lock(runtime_dir, target)
    except LockError as exc:
        raise BundlingError(str(exc)) from exc
    report = BundleReport(target=target)

    pip_install(output_dir, target=target, lock=lock, cache_dir=cache_dir, log=log)
    report.installed_bytes = tree_size(output_dir)

    for rule in TRIM_RULES:
        report.trimmed_bytes[rule.name] = remove(matches(output_dir, rule.patterns))
    report.trimmed_bytes["SDK models of other services"] = remove(unused_sdk_models(output_dir))
    report.duplicate_library_bytes = remove_duplicate_libraries(output_dir)
    check_links(output_dir)

    shutil.copytree(runtime_dir, output_dir / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements*.txt", "*.lock"))  # fmt: skip
    report.compiled_modules = compile_bytecode(output_dir, bytecode=bytecode, log=log)
    report.bytecode = (
        f"{report.compiled_modules} modules compiled ({bytecode.mode}) by {bytecode.interpreter}"
        if bytecode.interpreter else "NO BYTECODE (require_bytecode=false, no interpreter): every cold start compiles every module"
    )

    report.unzipped_bytes = tree_size(output_dir)
    report.files = sum(1 for p in output_dir.rglob("*") if p.is_file())
    report.seconds = time.monotonic() - started
    log(report.summary())
    for name, size in [*report.trimmed_bytes.items(), ("duplicate library copies", report.duplicate_library_bytes)]:
        if size:
            log(f"  trimmed {name}: {_mb(size)}")
    if report.unzipped_bytes >= LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise BundlingError(
            f"the Lambda asset would be {report.unzipped_bytes:,} bytes unzipped, at or over "
            f"Lambda's limit of {LAMBDA_UNZIPPED_LIMIT_BYTES:,} bytes (250 MB): drop a "
            f"dependency from runtime/requirements.txt or trim more in cdk_app/bundling/trim.py"
        )
    return report


def pip_install(output_dir: Path, *, target: Target, lock: Path, cache_dir: Path,
                 log: Callable[[str], None]) -> None:  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "install",
        "--requirement", str(lock),
        # The lock is the whole dependency tree: nothing else is resolved, every wheel is
        # checked against the sha256 it was locked with.
        "--no-deps", "--require-hashes",
        "--target", str(output_dir),
        *target.pip_platform_args(),
        "--no-compile",  # bytecode is compiled below, by an interpreter of the target version
        "--cache-dir", str(cache_dir),
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]  # fmt: skip
    log(f"pip install -r {lock.name} for {target} (wheels cached in {cache_dir})")
    # PIP_TARGET/PIP_PREFIX from the environment would fight --target; the rest of the
    # environment (index URL, proxies) is the user's to set.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_TARGET", "PIP_PREFIX", "PIP_USER")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BundlingError(f"pip could not install {lock} for {target}:\n{result.stderr.strip()}")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
