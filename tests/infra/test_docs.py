"""The docs cannot drift from the stack: resource types and context keys are checked."""

from __future__ import annotations

import re
from pathlib import Path

from cdk_app.config import ProcessingConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"
_TYPE = re.compile(r"`(AWS::[A-Za-z0-9]+::[A-Za-z0-9]+)`")
# Added by the CDK CLI at synth (version reporting), not by the app itself.
CLI_ONLY_TYPES = {"AWS::CDK::Metadata"}


def _table_rows(markdown: str, first_header: str) -> list[list[str]]:
    """Cells of the rows of the table whose first header cell is `first_header`."""
    rows, inside = [], False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not inside and cells[0] == first_header:
                inside = True
                continue
            if inside and not set(cells[0]) <= {"-", ":"}:
                rows.append(cells)
        elif inside:
            break
    return rows


def test_infrastructure_table_matches_the_synthesized_resource_types(template_json):
    rows = _table_rows((DOCS / "infrastructure.md").read_text(), "specification")
    specification = [row[0] for row in rows]
    for item in ("Lambda function", "Access to S3", "Access to SSM Parameter Store", "Access to CloudWatch",
                 "Access to Secrets Manager", "Retry", "Alert email"):  # fmt: skip
        assert item in specification
    documented = {t for row in rows for t in _TYPE.findall(row[2])}
    synthesized = {r["Type"] for r in template_json["Resources"].values()}
    assert synthesized - documented == set(), "synthesized but not in docs/infrastructure.md"
    assert documented - synthesized - CLI_ONLY_TYPES == set(), "in docs/infrastructure.md but not synthesized"


def markdown_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a document's headings (lower case, spaces to '-',
    punctuation but '-' and '_' dropped), and explicit `<a id="...">` ones."""
    anchors = set(re.findall(r'<a id="([^"]+)"', markdown))
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _render(default: object) -> str:
    if default is None:
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return f"`{list(default)}`"
    return f"`{default}`"


def test_deploy_guide_lists_every_context_key_with_its_default():
    rows = _table_rows((DOCS / "deploy.md").read_text(), "key")
    documented = {row[0].strip("`"): row[1] for row in rows}
    defaults = ProcessingConfig.defaults()
    assert list(documented) == list(defaults)
    for key, default in defaults.items():
        assert documented[key] == _render(default), key


def test_deploy_guide_covers_what_a_deployer_needs():
    text = (DOCS / "deploy.md").read_text()
    for needed in ("cdk bootstrap", "cdk deploy", "make synth", "InvocationType", '"packets"',
                   "Subscription", "Confirmation", "Node.js 22", "Python 3.11", "No Docker", "cdk.out/",
                   "make deploy-local", "from the profile", "stage=prod", "on-success destination", "make lock",
                   "require_bytecode=false", "EventFailedAllAttempts"):  # fmt: skip
        assert needed in text, needed


def test_the_ingestion_contract_says_what_the_ingestion_side_needs():
    text = (DOCS / "ingestion.md").read_text()
    for needed in ("{table}/{table}_packet_{id}_", ".jsonl.gz", '"packets"', 'InvocationType="Event"',
                   "lambda:InvokeFunction", "s3:PutObject", "IngestionWritesPackets", "versioned", "kms:Decrypt",
                   "ingestion_bucket_kms_key_arn", "ingestion_role_arn", "1 MiB", "4 GiB"):  # fmt: skip
        assert needed in text, needed


def test_the_runbook_walks_through_a_local_rehearsal_against_the_sandbox():
    text = (DOCS / "operations.md").read_text()
    rehearsal = text[text.index("## Rehearsing the runbook locally"):]
    for needed in ("make sandbox", "source out/sandbox.env", "--stage sandbox", "--dry-run", "sandbox.run --invoke",
                   "make sandbox-stop"):  # fmt: skip
        assert needed in rehearsal, needed
