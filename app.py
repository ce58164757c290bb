#!/usr/bin/env python3
"""CDK entry point: the one place that reads the context and the environment.

Settings come from `cdk.json` "context" or `-c key=value` (docs/deploy.md lists them).
The stack is environment-agnostic on purpose: its ARNs use the AWS::Region and
AWS::AccountId of wherever it is deployed, which is the account and region of the
credentials `cdk deploy` runs with (the profile). So `make synth` without a profile
bakes no region in (the CDK CLI would otherwise fall back to us-east-1). cdk-nag's
AwsSolutions rules run on every synth: an unacknowledged finding fails it.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from cdk_app.config import ProcessingConfig
from cdk_app.processing_stack import ProcessingStack


def build(app: cdk.App) -> ProcessingStack:
    config = ProcessingConfig.from_context(app.node.try_get_context)
    stack = ProcessingStack(
        app,
        config.resolved_stack_name,
        config=config,
        description="Totesys processing: JSON lines packets to the Parquet star schema",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
