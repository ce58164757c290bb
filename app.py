#!/usr/bin/env python3
"""CDK entry point: the one place that reads the context and the environment.

Settings come from `cdk.json` "context" or `-c key=value` (docs/deploy.md lists them).
A key that is not a setting (`-c stagee=prod`) is refused, naming it and the valid
keys, rather than silently synthesizing the default stage; a bad value stops with one
line naming the key. The stack is environment-agnostic on purpose: its ARNs use the
AWS::Region and AWS::AccountId of wherever it is deployed, which is the account and
region of the credentials `cdk deploy` runs with (the profile). So `make synth` without
a profile bakes no region in (the CDK CLI would otherwise fall back to us-east-1).
cdk-nag's AwsSolutions rules run on every synth: an unacknowledged finding fails it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jsii prints a multi-line banner (as b'...' lines) when Node is past its end of life;
# docs/deploy.md says which Node to use, and the synth does not need the banner.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from cdk_app.config import ConfigError, ProcessingConfig, check_context_keys  # noqa: E402
from cdk_app.processing_stack import ProcessingStack  # noqa: E402


def build(app: cdk.App) -> ProcessingStack:
    check_context_keys(app.node.get_all_context())
    config = ProcessingConfig.from_context(app.node.try_get_context)
    stack = ProcessingStack(
        app,
        config.resolved_stack_name,
        config=config,
        description="Totesys processing: JSON lines packets to the Parquet star schema",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def keep_only(outdir: Path, stack_name: str) -> list[str]:
    """Remove other stacks' templates and asset manifests from the cloud assembly, so
    cdk.out/ holds only the stage just synthesized (the asset folders stay: a cache)."""
    removed = []
    for path in [*outdir.glob("*.template.json"), *outdir.glob("*.assets.json")]:
        if path.name.split(".")[0] != stack_name:
            path.unlink()
            removed.append(path.name)
    return removed


def main() -> int:
    application = cdk.App()
    try:
        stack = build(application)
    except ConfigError as exc:
        print(f"cdk context refused: {exc}", file=sys.stderr)
        return 2
    assembly = application.synth()
    keep_only(Path(assembly.directory), stack.stack_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
