"""cfn-lint finds no errors in the synthesized template."""

from __future__ import annotations

import pytest
from cfnlint.api import ManualArgs, lint_file

import app as entry
from tests.infra.conftest import make_app

CONFIGURATIONS = {
    "created buckets": {},
    "imported buckets": {"ingestion_bucket": "totes-ingestion", "processed_bucket": "totes-processed"},
}


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_no_cfn_lint_errors(overrides, tmp_path):
    app = make_app(overrides, outdir=tmp_path)
    stack = entry.build(app)
    app.synth()
    template = tmp_path / stack.template_file
    matches = lint_file(template, config=ManualArgs(regions=["eu-west-2", "us-east-1"]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    for m in matches:  # warnings and informational findings, for the record (`pytest -s`)
        print(f"cfn-lint {m.rule.id}: {m.message}")
    assert errors == []
