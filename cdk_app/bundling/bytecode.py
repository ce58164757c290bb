"""Bytecode for the asset: compiled by the Lambda runtime's Python version, hash-based.

Lambda's /var/task is read-only: without .pyc files of the runtime's version every cold
start compiles each imported module in memory (pandas and pyarrow: seconds).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cdk_app.bundling.errors import BundlingError
from cdk_app.interpreter import Interpreter, find_interpreter
from cdk_app.lambda_platform import Target

# PEP 552: hash-based pycs. CDK's asset zip stores every file with a fixed 1980 timestamp,
# so timestamp pycs would be stale once deployed and recompiled at every cold start.
# "unchecked-hash" rather than "checked-hash": /var/task is read-only and the asset is
# built as a whole (a source never changes without its pyc being rebuilt beside it), so
# checking would only cost a read and a SipHash of every imported source per cold start.
INVALIDATION_MODE = "unchecked-hash"
# Where Lambda unpacks the asset: compiled file names point there, not at the build folder
# (so the bytes do not depend on where it was built, and tracebacks name /var/task).
LAMBDA_TASK_ROOT = "/var/task"


@dataclass(frozen=True)
class Bytecode:
    """How the asset's modules are compiled: by this interpreter, or (opted out) not at all."""

    interpreter: Interpreter | None
    mode: str = INVALIDATION_MODE

    @property
    def fingerprint(self) -> str:
        """What of the compiler changes the asset's bytes (part of the asset hash)."""
        if self.interpreter is None:
            return "no-bytecode"
        return f"cpython-{self.interpreter.version}-{self.mode}"


def resolve_bytecode(target: Target, *, required: bool, env: dict[str, str] | None = None) -> Bytecode:
    """Find the compiler for `target`'s Python; without one, fail unless not `required`."""
    search = find_interpreter(target.python_version, env)
    if search.interpreter is not None or not required:
        return Bytecode(search.interpreter)
    tried = "\n".join(f"  - {line}" for line in search.tried)
    raise BundlingError(
        f"no Python {target.python_version} interpreter found to compile the asset's bytecode.\n"
        f"Looked at:\n{tried}\n"
        f"Without bytecode every cold start compiles about a thousand modules (seconds of "
        f"billed INIT, near Lambda's 10 s cap). Install Python {target.python_version} "
        f"(`pyenv install {target.python_version}`, `uv python install {target.python_version}` "
        f"or your system's package), or point LAMBDA_PYTHON at one; to build without bytecode "
        f"anyway, synthesize with `-c require_bytecode=false`."
    )


def compile_bytecode(root: Path, *, bytecode: Bytecode, log: Callable[[str], None]) -> int:
    """Compile every module under `root`; returns how many .py files have a .pyc.

    Lambda's /var/task is read-only, so without bytecode in the asset every cold start
    compiles each imported module in memory (pandas and pyarrow: seconds).
    """
    if bytecode.interpreter is None:
        log("bytecode NOT compiled (require_bytecode=false, no interpreter): Lambda will compile modules at every cold start")
        return 0
    result = subprocess.run(
        [bytecode.interpreter.path, "-m", "compileall", "-q", "-j", "0",
         "--invalidation-mode", bytecode.mode,
         "-s", str(root), "-p", LAMBDA_TASK_ROOT, str(root)],
        capture_output=True, text=True, check=False,
        # Constant sets are marshalled in hash order: a fixed seed gives the same bytes.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    sources = sorted(root.rglob("*.py"))
    missing = [p for p in sources if not Path(_cache_path(p, bytecode.interpreter.version)).is_file()]
    if result.returncode != 0 or missing:
        raise BundlingError(
            f"{bytecode.interpreter.path} could not compile {len(missing)} of {len(sources)} modules "
            f"(e.g. {[str(p.relative_to(root)) for p in missing[:3]]}):\n"
            f"{result.stdout.strip()[-2000:]}\n{result.stderr.strip()[-2000:]}"
        )
    log(f"compiled {len(sources)} modules ({bytecode.mode}) with {bytecode.interpreter}")
    return len(sources)


def _cache_path(source: Path, version: str) -> Path:
    """Where CPython `version` looks for the bytecode of `source` (importlib's layout)."""
    tag = "cpython-" + "".join(version.split(".")[:2])
    return source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
