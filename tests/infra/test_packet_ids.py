"""The packet-id parameters: one per name from runtime.tables, created at 0, never reset.

CloudFormation writes a String parameter's value when it creates it, and afterwards
only when the template changes that resource. These tests pin the resources down so
that an update can never write "0" over a live id: the value is a literal "0", the
properties are exactly these, and other configuration changes leave them byte-identical.
"""

from __future__ import annotations

from runtime.tables import packet_id_parameters
from tests.infra.conftest import resources_of


def _parameters(template_json):
    return {r["Properties"]["Name"]: r for r in resources_of(template_json, "AWS::SSM::Parameter").values()}


def test_one_string_parameter_at_zero_per_packet_id(template_json):
    parameters = _parameters(template_json)
    assert set(parameters) == set(packet_id_parameters("/totesys/dev/processing"))
    for parameter in parameters.values():
        assert parameter["Properties"] == {
            "Name": parameter["Properties"]["Name"],
            "Type": "String",
            "Value": "0",
            "Tier": "Standard",
        }


def test_parameters_are_retained_with_the_data(template_json):
    for parameter in _parameters(template_json).values():
        assert parameter["DeletionPolicy"] == "Retain"
        assert parameter["UpdateReplacePolicy"] == "Retain"


def test_prefix_follows_the_stage(synth):
    parameters = _parameters(synth(stage="staging").to_json())
    assert set(parameters) == set(packet_id_parameters("/totesys/staging/processing"))


def test_other_changes_leave_the_parameters_untouched(template_json, synth):
    """An update that changes anything else renders these resources identically, so
    CloudFormation does not touch them and the live ids survive the deploy."""
    changed = synth(
        memory_mb=4096,
        timeout_seconds=900,
        log_level="DEBUG",
        alarm_emails=["someone-else@example.com"],
        ingestion_role_arn="",
        architecture="x86_64",
        log_retention_days=365,
    ).to_json()
    before = {k: r for k, r in template_json["Resources"].items() if r["Type"] == "AWS::SSM::Parameter"}
    after = {k: r for k, r in changed["Resources"].items() if r["Type"] == "AWS::SSM::Parameter"}
    assert before == after


def test_the_stacks_parameters_are_the_table_graphs_in_dependency_order(template_json):
    """The stack names no table itself: its parameters are the graph's sources in
    the design's dependency order (docs/design.md#ordering), then every output table."""
    from runtime.tables import OUTPUT_TABLES
    from tests.unit.test_tables import DESIGN_ORDER

    names = list(_parameters(template_json))  # in the template's order
    prefix = "/totesys/dev/processing"  # the default stage's
    assert [n.removeprefix(f"{prefix}/consumed/") for n in names if "/consumed/" in n] == DESIGN_ORDER
    assert {n.removeprefix(f"{prefix}/produced/") for n in names if "/produced/" in n} == set(OUTPUT_TABLES)
    assert len(names) == len(DESIGN_ORDER) + len(OUTPUT_TABLES) == 22
