#!/usr/bin/env python3
"""CDK entry point: the one place that reads the context and the environment.

Settings come from `cdk.json` "context" or `-c key=value` (docs/deploy.md lists them);
the target account and region from the AWS credentials the CDK CLI runs with. cdk-nag's
AwsSolutions rules run on every synth: an unacknowledged finding fails it.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from cdk_app.config import ProcessingConfig
from cdk_app.processing_stack import ProcessingStack


def build(app: cdk.App) -> ProcessingStack:
    config = ProcessingConfig.from_context(app.node.try_get_context)
    stack = ProcessingStack(
        app,
        config.stack_name,
        config=config,
        description="Totesys processing: JSON lines packets to the Parquet star schema",
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
