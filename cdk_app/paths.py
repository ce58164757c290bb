"""Where the project's parts are, for the CDK app and its build steps."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = PROJECT_ROOT / "runtime"
PIP_CACHE_DIR = PROJECT_ROOT / ".cache" / "pip"
