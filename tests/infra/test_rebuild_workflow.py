"""The rebuild workflow in the template (cdk_app/rebuild_workflow.py): the state
machine is the definition the moto execution test runs, on the processing code asset,
and its roles may do what the rebuild calls and no more."""

from __future__ import annotations

import json

from cdk_app.rebuild_workflow import FUNCTION_ARN, definition
from tests.infra.conftest import actions_of, policy_statements, resources_of


def _machine(template_json) -> dict:
    (machine,) = resources_of(template_json, "AWS::StepFunctions::StateMachine").values()
    return machine["Properties"]


def test_the_state_machine_is_the_definition_with_a_distributed_map(template_json):
    props = _machine(template_json)
    assert props["StateMachineType"] == "STANDARD"
    # The very JSON the moto execution test runs (ResultPath null and all).
    assert json.loads(props["DefinitionString"]) == definition(FUNCTION_ARN, max_concurrency=4)
    [(name, arn)] = props["DefinitionSubstitutions"].items()
    assert f"${{{name}}}" == FUNCTION_ARN
    assert arn["Fn::GetAtt"][0].startswith("RebuildFunction") and arn["Fn::GetAtt"][1] == "Arn"
    stage = json.loads(props["DefinitionString"])["States"]["StageFacts"]
    assert stage["ResultPath"] is None  # the Map's results do not replace the input
    assert stage["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert stage["ItemBatcher"]["MaxItemsPerBatch"] >= 1 and "ItemReader" in stage


def test_max_concurrency_comes_from_the_config(synth):
    props = _machine(synth(rebuild_max_concurrency=32).to_json())
    assert json.loads(props["DefinitionString"])["States"]["StageFacts"]["MaxConcurrency"] == 32


def test_the_rebuild_function_runs_the_processing_asset_and_handler(template_json):
    functions = resources_of(template_json, "AWS::Lambda::Function")
    (processing,) = [f for k, f in functions.items() if k.startswith("ProcessingFunction")]
    (rebuild,) = [f for k, f in functions.items() if k.startswith("RebuildFunction")]
    for key in ("Code", "Handler", "Runtime", "Architectures"):
        assert rebuild["Properties"][key] == processing["Properties"][key], key
    assert rebuild["Properties"]["Timeout"] == 900
    assert "ReservedConcurrentExecutions" not in rebuild["Properties"]


def test_the_rebuild_role_reads_the_ingestion_and_writes_only_generations(template_json):
    statements = policy_statements(template_json, role="RebuildRole")
    granted = {a for s in statements for a in actions_of(s)}
    assert granted == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                       "ssm:GetParameter", "ssm:PutParameter", "logs:CreateLogStream", "logs:PutLogEvents"}
    text = json.dumps(statements)
    assert "totesys-dev-generation-*" in text and "/totesys/dev/generations/*" in text
    for statement in statements:
        if set(actions_of(statement)) & {"s3:PutObject", "s3:DeleteObject", "ssm:PutParameter"}:
            assert "generation" in json.dumps(statement["Resource"]), statement
