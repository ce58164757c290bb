"""The Lambda platform's lock files: every package of the asset pinned, with its wheel's sha256.

`runtime/requirements.txt` names the function's direct dependencies; pip resolves the rest
on the day, so two builds a month apart would ship different numpy or pydantic. The lock
records what one resolution for the Lambda platform chose (name, version and the sha256 of
the wheel for that platform), and the bundler installs exactly that, `--no-deps
--require-hashes`. Its first line is the sha256 of the requirements it was made from, so a
changed requirements.txt with a stale lock fails the build instead of shipping the old pins.

    make lock          # python -m cdk_app.bundling.lock: rewrites the lock of every target below
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from cdk_app.lambda_platform import Target
from cdk_app.paths import PIP_CACHE_DIR, RUNTIME_DIR

# The function's platforms: the runtime's Python on either Lambda CPU (context `architecture`).
LOCKED_TARGETS = (Target("3.12", "aarch64"), Target("3.12", "x86_64"))
_HEADER = "# requirements.txt sha256: "


class LockError(RuntimeError):
    """The lock file is missing or was made from other requirements."""


def lock_path(runtime_dir: Path, target: Target) -> Path:
    return Path(runtime_dir) / f"requirements-{target.abi}-{target.machine}.lock"


def requirements_digest(requirements: Path) -> str:
    return hashlib.sha256(Path(requirements).read_bytes()).hexdigest()


def checked_lock(runtime_dir: Path, target: Target) -> Path:
    """The lock for `target`, after checking it was made from the current requirements."""
    lock = lock_path(runtime_dir, target)
    requirements = Path(runtime_dir) / "requirements.txt"
    if not lock.is_file():
        raise LockError(f"{lock} is missing: run `make lock` to pin every package for {target}")
    first = lock.read_text().splitlines()[0] if lock.read_text() else ""
    if first != _HEADER + requirements_digest(requirements):
        raise LockError(
            f"{lock.name} was made from another {requirements.name}: run `make lock` "
            "and review the diff of the pins"
        )
    return lock


def write_lock(runtime_dir: Path, target: Target, *, cache_dir: Path | None = None) -> Path:
    """Resolve requirements.txt for `target` with pip and write its lock file."""
    requirements = Path(runtime_dir) / "requirements.txt"
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
            "--report", str(report), "--target", str(Path(scratch) / "target"),
            "--requirement", str(requirements), *target.pip_platform_args(),
            "--disable-pip-version-check", "--no-input",
        ]  # fmt: skip
        if cache_dir is not None:
            command += ["--cache-dir", str(cache_dir)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LockError(f"pip could not resolve {requirements} for {target}:\n{result.stderr.strip()}")
        installs = json.loads(report.read_text())["install"]
    lines = [
        _HEADER + requirements_digest(requirements),
        f"# Every package of the Lambda asset for {target}, resolved from requirements.txt by",
        "# `make lock` (python -m cdk_app.bundling.lock). Do not edit: change requirements.txt and re-lock.",
    ]
    for item in sorted(installs, key=lambda i: _normalized(i["metadata"]["name"])):
        name, version = _normalized(item["metadata"]["name"]), item["metadata"]["version"]
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    lock = lock_path(runtime_dir, target)
    lock.write_text("\n".join(lines) + "\n")
    return lock


def locked_versions(lock: Path) -> dict[str, str]:
    """{package: version} of a lock file."""
    pins = {}
    for line in Path(lock).read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split(" ")[0].split("==")
            pins[name] = version
    return pins


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


if __name__ == "__main__":
    for locked in LOCKED_TARGETS:
        written = write_lock(RUNTIME_DIR, locked, cache_dir=PIP_CACHE_DIR)
        print(f"{written.relative_to(RUNTIME_DIR.parent)}: {len(locked_versions(written))} packages for {locked}")
