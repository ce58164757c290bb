"""One reviewed snapshot of the whole template (the full deployment, buckets created).

Asset hashes are replaced by a placeholder, so a change to runtime/ does not break it;
any other change to the template does, and is reviewed as a diff of this file.

To accept a change on purpose, regenerate it and review the diff before committing:

    UPDATE_SNAPSHOT=1 python -m pytest tests/infra/test_snapshot.py
    git diff tests/infra/snapshots/
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "processing_stack.template.json"
_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def canonical(template: dict) -> str:
    text = json.dumps(template, indent=2, sort_keys=True)
    return _ASSET_HASH.sub("<asset-hash>", text) + "\n"


def test_template_matches_the_reviewed_snapshot(template_json):
    actual = canonical(template_json)
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(actual)
    expected = SNAPSHOT.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "snapshot", "synthesized", n=2)
        )
        raise AssertionError(
            "the template differs from the reviewed snapshot; if intended, run "
            "UPDATE_SNAPSHOT=1 python -m pytest tests/infra/test_snapshot.py and review the diff:\n"
            + diff[:6000]
        )


def test_the_snapshot_hides_only_asset_hashes(template_json):
    code = next(
        r["Properties"]["Code"] for r in template_json["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    )
    assert _ASSET_HASH.fullmatch(code["S3Key"].removesuffix(".zip"))
    assert '"S3Key": "<asset-hash>.zip"' in canonical(template_json)
