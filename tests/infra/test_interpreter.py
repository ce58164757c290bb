"""Finding the runtime's Python for the bytecode: PATH, pyenv, uv, or a clear failure."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match

from cdk_app import processing_function
from cdk_app.bundling import BundlingError, resolve_bytecode, unbundled_code
from cdk_app.interpreter import find_interpreter
from cdk_app.lambda_platform import Target
from tests.infra.conftest import build_stack


def _fake_python(path: Path, version: str | None) -> Path:
    """An executable that answers the version probe like Python `version` (None: fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"echo {version}" if version else "echo 'pyenv: python3.12: command not found' >&2; exit 127"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_python_on_path_is_taken_first(tmp_path):
    _fake_python(tmp_path / "bin" / "python3.12", "3.12.7")
    found = find_interpreter("3.12", {"PATH": str(tmp_path / "bin"), "PYENV_ROOT": str(tmp_path / "none")})
    assert found.interpreter is not None
    assert (found.interpreter.version, found.interpreter.found_by) == ("3.12.7", "PATH")


def test_a_pyenv_shim_that_does_not_run_is_passed_over_for_pyenv_versions(tmp_path):
    _fake_python(tmp_path / "shims" / "python3.12", None)
    root = tmp_path / "pyenv"
    _fake_python(root / "versions" / "3.12.1" / "bin" / "python3.12", "3.12.1")
    _fake_python(root / "versions" / "3.12.10" / "bin" / "python3.12", "3.12.10")
    _fake_python(root / "versions" / "3.13.0" / "bin" / "python3.13", "3.13.0")
    found = find_interpreter("3.12", {"PATH": str(tmp_path / "shims"), "PYENV_ROOT": str(root)})
    assert found.interpreter is not None
    assert found.interpreter.found_by == "pyenv"
    assert found.interpreter.version == "3.12.10"  # the newest patch release, numerically
    assert any("does not run" in line for line in found.tried)


def test_uv_is_asked_last(tmp_path):
    target = _fake_python(tmp_path / "uv-pythons" / "python3.12", "3.12.4")
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir()
    uv.write_text(f'#!/bin/sh\n[ "$1 $2 $3" = "python find 3.12" ] && echo {target}\n')
    uv.chmod(0o755)
    found = find_interpreter("3.12", {"PATH": str(tmp_path / "bin"), "PYENV_ROOT": str(tmp_path / "none")})
    assert found.interpreter is not None
    assert (found.interpreter.path, found.interpreter.found_by) == (str(target), "uv")


def test_an_explicit_interpreter_of_another_version_is_refused(tmp_path):
    wrong = _fake_python(tmp_path / "python", "3.11.7")
    found = find_interpreter("3.12", {"PATH": "", "LAMBDA_PYTHON": str(wrong)})
    assert found.interpreter is None
    assert found.tried == (f"LAMBDA_PYTHON: {wrong} (runs 3.11.7)",)


def test_no_interpreter_fails_the_build_naming_what_was_tried_and_the_way_out(tmp_path):
    env = {"PATH": str(tmp_path), "PYENV_ROOT": str(tmp_path / "none")}
    with pytest.raises(BundlingError) as failure:
        resolve_bytecode(Target("3.12", "aarch64"), required=True, env=env)
    message = str(failure.value)
    assert "no Python 3.12 interpreter found" in message
    assert "PATH: no python3.12" in message and "uv: not installed" in message
    assert "LAMBDA_PYTHON" in message and "-c require_bytecode=false" in message
    assert resolve_bytecode(Target("3.12", "aarch64"), required=False, env=env).interpreter is None


@pytest.fixture()
def no_python_312(monkeypatch, tmp_path):
    """A machine without Python 3.12, and bundling replaced by runtime/ as it is (fast)."""
    monkeypatch.setenv("LAMBDA_PYTHON", str(_fake_python(tmp_path / "python", None)))
    monkeypatch.setattr(processing_function, "bundled_code", lambda **_: unbundled_code())


def test_synthesis_fails_without_the_runtime_python(no_python_312):
    with pytest.raises(BundlingError, match="no Python 3.12 interpreter found"):
        build_stack({"bundle": True})


def test_synthesis_without_bytecode_only_on_request_and_loudly(no_python_312, capsys):
    _, stack = build_stack({"bundle": True, "require_bytecode": "false"})
    Annotations.from_stack(stack).has_warning("*", Match.string_like_regexp("ships NO .pyc"))
    assert "ships NO .pyc" in capsys.readouterr().err


def _real_python(path: Path, version: str) -> Path:
    """An interpreter that reports its version and its own path, as the probe asks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho {version}\necho "$0"\n')
    path.chmod(0o755)
    return path


def test_a_pyenv_shim_is_resolved_to_the_interpreter_it_runs(tmp_path):
    # A shim picks its version from PYENV_VERSION (or .python-version): it works in the
    # deployer's shell and fails in the stripped environment of a later cold run.
    real = _real_python(tmp_path / "pyenv" / "versions" / "3.12.1" / "bin" / "python3.12", "3.12.1")
    shim = tmp_path / "shims" / "python3.12"
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\n[ -n "$PYENV_VERSION" ] || { echo "pyenv: python3.12: command not found" >&2; '
                    f'exit 127; }}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    env = {"PATH": str(tmp_path / "shims"), "PYENV_VERSION": "3.12.1", "PYENV_ROOT": str(tmp_path / "none")}
    found = find_interpreter("3.12", env).interpreter
    assert found is not None and found.found_by == "PATH"
    assert found.path == str(real) and found.via == str(shim)
    assert "via" in str(found)
    # The resolved path runs with nothing in the environment; the shim does not.
    assert subprocess.run([found.path, "-c", "pass"], env={}, capture_output=True).returncode == 0
    assert subprocess.run([str(shim), "-c", "pass"], env={}, capture_output=True).returncode == 127


def _pyenv_312() -> tuple[Path, str] | None:
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    root = Path(subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip())
    versions = sorted(d.name for d in (root / "versions").glob("3.12.*"))
    return (root, versions[-1]) if versions else None


@pytest.mark.skipif(_pyenv_312() is None, reason="this machine has no pyenv with a 3.12")
@pytest.mark.parametrize("how", ["PYENV_VERSION", ".python-version"])
def test_the_machines_pyenv_shim_resolves_to_a_real_312_that_runs_without_an_environment(tmp_path, how):
    root, version = _pyenv_312()
    env = {"PATH": f"{root / 'shims'}:{root / 'bin'}:/usr/bin:/bin", "PYENV_ROOT": str(root), "HOME": str(tmp_path)}
    if how == "PYENV_VERSION":
        env["PYENV_VERSION"] = version
    else:
        (tmp_path / ".python-version").write_text(f"{version}\n")
        env["PYENV_DIR"] = str(tmp_path)  # where pyenv looks for .python-version
    found = find_interpreter("3.12", env).interpreter
    assert found is not None and "/shims/" not in found.path, found
    assert Path(found.path).resolve().is_relative_to(root / "versions" / version)
    done = subprocess.run([found.path, "-c", "import sys; print(sys.version)"], env={}, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith(version)
