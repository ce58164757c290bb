"""The packet-id parameters in SSM Parameter Store (docs/design.md#ordering), created at 0.

One String parameter per `consumed/{source}` and `produced/{output}` id, named by
`runtime.tables.packet_id_parameters`, never retyped here.

CloudFormation writes a parameter's value when it creates it, and again only when the
template changes that resource. The template value is always "0", so an update of the
stack leaves the live ids alone, as long as nothing else about these resources changes
(tests/infra/test_packet_ids.py pins them down). They are retained when the stack is
deleted: they describe what the retained processed bucket holds.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from runtime.tables import packet_id_parameters

INITIAL_PACKET_ID = "0"


class PacketIdParameters(Construct):
    """Every packet-id parameter under `prefix`, each starting at 0."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str) -> None:
        super().__init__(scope, construct_id)
        self.prefix = prefix
        self.parameters: dict[str, ssm.StringParameter] = {}
        for name in packet_id_parameters(prefix):
            relative = name.removeprefix(prefix + "/")  # e.g. consumed/sales_order
            parameter = ssm.StringParameter(
                self,
                relative.replace("/", "-"),
                parameter_name=name,
                string_value=INITIAL_PACKET_ID,
                tier=ssm.ParameterTier.STANDARD,
            )
            parameter.apply_removal_policy(RemovalPolicy.RETAIN)
            self.parameters[name] = parameter

    def grant_read_write(self, grantee: iam.IGrantable) -> None:
        """GetParameter and PutParameter (what runtime/adapters/ssm.py calls) on these, no other.

        Not `StringParameter.grant_read`: it adds GetParameterHistory, GetParameters and
        DescribeParameters, none of which the runtime calls.
        """
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ssm:GetParameter", "ssm:PutParameter"],
            resource_arns=[parameter.parameter_arn for parameter in self.parameters.values()],
        )
