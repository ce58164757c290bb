"""cdk-nag's AwsSolutions rules pass; every acknowledged finding has a written reason.

cdk-nag 3 runs as a CDK policy-validation plugin (`Validations.of(app).add_plugins`,
as app.py does) rather than an Aspect: its findings are not Annotations but the
plugin's report, which `validate_scope` returns and synthesis writes to
validation-report.json (and fails on, for errors). Both are checked here, warnings
included.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks

import app as entry
from tests.infra.conftest import build_stack, make_app

CONFIGURATIONS = {
    "created buckets, every option": {},
    "imported buckets": {"ingestion_bucket": "totes-ingestion", "processed_bucket": "totes-processed"},
    "minimal": {"alarm_emails": "ops@example.com", "ingestion_role_arn": "",
                "architecture": "x86_64"},
}  # fmt: skip


def acknowledgments(app: cdk.App) -> dict[str, dict[str, str]]:
    """Acknowledged rule ids and their reasons, by construct path."""
    found: dict[str, dict[str, str]] = {}
    for construct in app.node.find_all():
        for item in construct.node.metadata:
            if item.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found.setdefault(construct.node.path, {}).update(item.data)
    return found


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_no_unacknowledged_findings(overrides, tmp_path):
    app, _ = build_stack({**overrides})
    result = AwsSolutionsChecks(verbose=True).validate_scope(app)
    findings = [f"{v.severity} {v.rule_name}: {[r.construct_path for r in v.violating_resources]}"
                for v in result.violations]  # fmt: skip
    assert findings == []
    assert result.success


def test_synthesis_reports_no_violations(tmp_path):
    app = make_app(outdir=tmp_path)
    entry.build(app)
    app.synth()  # raises if a plugin reports an error
    report = json.loads((tmp_path / "validation-report.json").read_text())
    # Besides cdk-nag's findings, the report carries the app's own annotations, such as
    # the warning that bundle=false (used here) is not deployable.
    violations = [
        (plugin["pluginName"], v["ruleName"])
        for plugin in report["pluginReports"]
        for v in plugin.get("violations", [])
    ]
    assert violations in ([], [("Construct Annotations", "Annotation::totesys:unbundled")])


def test_every_acknowledgment_has_a_reason():
    app, _ = build_stack()
    found = acknowledgments(app)
    assert found, "expected the acknowledged findings to be recorded"
    for path, rules in found.items():
        for rule, reason in rules.items():
            assert rule.removeprefix("Annotation::").startswith("AwsSolutions-"), (path, rule)
            assert len(reason) >= 40, f"{path} {rule}: the reason is too short to explain anything"
    # Printed for `pytest -s`: the list a reviewer signs off.
    for path, rules in sorted(found.items()):
        for rule, reason in rules.items():
            print(f"{path}: {rule}: {reason}")
