"""Finding a Python interpreter of the Lambda runtime's minor version on the build machine.

The asset's bytecode must be compiled by the same minor version as the runtime (a `.pyc`
of another version is ignored, and every cold start then compiles about a thousand
modules). Users keep such an interpreter in different places, so this looks, in order:

1. `$LAMBDA_PYTHON`, an explicit path (wins over everything, and must work);
2. the interpreter running the build, if it is of that version;
3. `python3.12` on PATH (a pyenv shim there only counts if it actually runs 3.12);
4. pyenv's versions: `$(pyenv root)/versions/3.12.*/bin/python3.12`, newest first;
5. uv's: `uv python find 3.12`.

Each candidate is run once to check its version, so a broken shim or a stale symlink is
passed over, and the report says which one was taken and how it was found. The path kept
is the interpreter's own (`sys.executable` as it reports it), never a pyenv shim: a shim
resolves its version from PYENV_VERSION, `.python-version` and PYENV_ROOT, which a later
run with a stripped environment (the cold start of the deployed code) does not have.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LAMBDA_PYTHON_ENV = "LAMBDA_PYTHON"
_PROBE = "import platform, sys; print(platform.python_version()); print(sys.executable)"


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str  # full version, e.g. "3.12.1"
    found_by: str  # "LAMBDA_PYTHON", "this interpreter", "PATH", "pyenv", "uv"
    via: str | None = None  # what was found, when it is not the interpreter itself (a shim)

    def __str__(self) -> str:
        via = f" via {self.via}" if self.via else ""
        return f"Python {self.version} at {self.path} (found by {self.found_by}{via})"


@dataclass(frozen=True)
class Search:
    """The outcome of a search: the interpreter, or None and what was tried."""

    interpreter: Interpreter | None
    tried: tuple[str, ...]


def find_interpreter(minor: str, env: Mapping[str, str] | None = None) -> Search:
    """The first working interpreter of version `minor` ("3.12"), and everything tried."""
    env = os.environ if env is None else env
    tried: list[str] = []

    def probe(path: str, found_by: str) -> Interpreter | None:
        version, real = _version_of(path, env)
        if version is not None and _minor(version) == minor:
            if real and real != path:
                return Interpreter(path=real, version=version, found_by=found_by, via=path)
            return Interpreter(path=path, version=version, found_by=found_by)
        tried.append(f"{found_by}: {path} ({'runs ' + version if version else 'does not run'})")
        return None

    explicit = env.get(LAMBDA_PYTHON_ENV, "").strip()
    if explicit:
        # An explicit choice is never second-guessed by falling back to another one.
        return Search(probe(explicit, LAMBDA_PYTHON_ENV), tuple(tried))
    tried.append(f"{LAMBDA_PYTHON_ENV}: not set")

    if _minor(".".join(map(str, sys.version_info[:3]))) == minor:
        return Search(Interpreter(sys.executable, ".".join(map(str, sys.version_info[:3])),
                                  "this interpreter"), tuple(tried))  # fmt: skip

    on_path = shutil.which(f"python{minor}", path=env.get("PATH", ""))
    if on_path is None:
        tried.append(f"PATH: no python{minor}")
    elif found := probe(on_path, "PATH"):
        return Search(found, tuple(tried))

    for candidate in _pyenv_candidates(minor, env, tried):
        if found := probe(candidate, "pyenv"):
            return Search(found, tuple(tried))

    uv = shutil.which("uv", path=env.get("PATH", ""))
    if uv is None:
        tried.append("uv: not installed")
    else:
        result = _run([uv, "python", "find", minor], env)
        if result is not None and result.returncode == 0 and result.stdout.strip():
            if found := probe(result.stdout.strip().splitlines()[-1], "uv"):
                return Search(found, tuple(tried))
        else:
            tried.append(f"uv: `uv python find {minor}` found none")
    return Search(None, tuple(tried))


def _pyenv_candidates(minor: str, env: Mapping[str, str], tried: list[str]) -> list[str]:
    root = env.get("PYENV_ROOT", "").strip()
    if not root:
        pyenv = shutil.which("pyenv", path=env.get("PATH", ""))
        result = _run([pyenv, "root"], env) if pyenv else None
        root = result.stdout.strip() if result is not None and result.returncode == 0 else ""
    if not root:
        tried.append("pyenv: not installed")
        return []
    pattern = re.compile(rf"^{re.escape(minor)}\.(\d+)$")
    versions = sorted(
        ((int(m.group(1)), d) for d in (Path(root) / "versions").glob(f"{minor}.*")
         if (m := pattern.match(d.name))),
        reverse=True,
    )  # fmt: skip
    if not versions:
        tried.append(f"pyenv: no {minor}.x under {root}/versions")
    return [str(d / "bin" / f"python{minor}") for _, d in versions]


def _version_of(path: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The version a candidate runs, and the interpreter's own path if it is another
    existing file (a shim or a wrapper script exec'ing the real one)."""
    result = _run([path, "-c", _PROBE], env)
    if result is None or result.returncode != 0:
        return None, None
    lines = result.stdout.strip().splitlines()
    if not lines:
        return None, None
    real = lines[1].strip() if len(lines) > 1 else ""
    return lines[0].strip(), (real if real and os.path.isfile(real) and os.access(real, os.X_OK) else None)


def _run(command: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, env=dict(env), timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
