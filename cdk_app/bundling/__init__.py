"""The Lambda asset, built without Docker: pinned wheels for the Lambda platform, trimmed,
compiled to bytecode, size-guarded.

One module per step: `lock` (every package pinned, `make lock`), `build` (install, trim,
check, compile, measure), `trim` (what the function never loads, each rule with its
reason), `elf` (what each shared library links against), `bytecode` (hash-based .pyc by
the runtime's Python version), `asset` (the CDK asset and its hash). What the rest of the
app uses is re-exported here.
"""

from __future__ import annotations

from cdk_app.bundling.asset import asset_hash, bundled_code, tree_digest, unbundled_code
from cdk_app.bundling.build import LAMBDA_UNZIPPED_LIMIT_BYTES, BundleReport, build_bundle
from cdk_app.bundling.bytecode import Bytecode, resolve_bytecode
from cdk_app.bundling.elf import check_links
from cdk_app.bundling.errors import BundlingError
from cdk_app.bundling.trim import SDK_SERVICES, TRIM_RULES, tree_size
from cdk_app.paths import PIP_CACHE_DIR, RUNTIME_DIR

__all__ = [
    "LAMBDA_UNZIPPED_LIMIT_BYTES",
    "PIP_CACHE_DIR",
    "RUNTIME_DIR",
    "SDK_SERVICES",
    "TRIM_RULES",
    "BundleReport",
    "BundlingError",
    "Bytecode",
    "asset_hash",
    "build_bundle",
    "bundled_code",
    "check_links",
    "resolve_bytecode",
    "tree_digest",
    "tree_size",
    "unbundled_code",
]
