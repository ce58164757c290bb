"""app.py: the context reaches the stack, and the app synthesizes with cdk-nag attached."""

from __future__ import annotations

import json

from aws_cdk.assertions import Template

from tests.infra.conftest import ROOT, build_stack


def test_stack_name_and_context_reach_the_stack():
    app, stack = build_stack({"stack_name": "TotesysProcessingStaging", "memory_mb": "2048"})
    assert stack.stack_name == "TotesysProcessingStaging"
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Function", {"MemorySize": 2048})
    assert build_stack({"stage": "prod"})[1].stack_name == "TotesysProcessing-prod"


def test_the_stack_takes_its_region_and_account_from_where_it_is_deployed(monkeypatch):
    # Whatever the CLI guessed (us-east-1 without a profile), nothing is baked in.
    monkeypatch.setenv("CDK_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "111111111111")
    _, stack = build_stack()
    text = json.dumps(Template.from_stack(stack).to_json())
    assert "us-east-1" not in text and "111111111111" not in text
    assert '{"Ref": "AWS::Region"}' in text


def test_cdk_json_runs_app_py_and_sets_no_deployment_values():
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert cdk_json["app"] == "python3 app.py"
    # Deployment values are documented context keys with defaults in cdk_app/config.py;
    # cdk.json carries only CDK's feature flags, so there is one place for each default.
    assert all(key.startswith("@aws-cdk") for key in cdk_json["context"])
