"""Synthesis helpers for the infrastructure tests.

Template tests synthesize with `bundle=False` (runtime/ packaged as it is, no pip), so
they take a second or two each; the bundling tests build the real asset. The context
is cdk.json's (feature flags included), as `cdk synth` would pass it, plus overrides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Under an end-of-life Node.js, jsii prints a banner each time it starts; the tests have no
# use for it (docs/deploy.md recommends Node 22+ for deploying).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

import app as entry  # noqa: E402
from cdk_app.processing_stack import ProcessingStack  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# A deployment with every optional part switched on.
FULL_CONTEXT: dict[str, Any] = {
    "bundle": False,
    "alarm_emails": ["data-oncall@example.com", "lead@example.com"],
    "ingestion_role_arn": "arn:aws:iam::123456789012:role/totesys-ingestion",
}


def cdk_json_context() -> dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


def make_app(overrides: dict[str, Any] | None = None, outdir: Path | None = None) -> cdk.App:
    context = {**cdk_json_context(), **FULL_CONTEXT, **(overrides or {})}
    return cdk.App(context=context, outdir=str(outdir) if outdir else None)


def build_stack(overrides: dict[str, Any] | None = None) -> tuple[cdk.App, ProcessingStack]:
    """The app as app.py builds it (cdk-nag included), from cdk.json's context + overrides."""
    app = make_app(overrides)
    return app, entry.build(app)


@pytest.fixture(scope="session")
def synth() -> Callable[..., Template]:
    """Template for a context override, memoized for the session."""
    cache: dict[str, Template] = {}

    def _synth(**overrides: Any) -> Template:
        key = json.dumps(overrides, sort_keys=True)
        if key not in cache:
            _, stack = build_stack(overrides)
            cache[key] = Template.from_stack(stack)
        return cache[key]

    return _synth


@pytest.fixture(scope="session")
def template(synth: Callable[..., Template]) -> Template:
    """The full deployment's template, with buckets created by the stack."""
    return synth()


@pytest.fixture(scope="session")
def template_json(template: Template) -> dict[str, Any]:
    return template.to_json()


def resources_of(template_json: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template_json["Resources"].items() if r["Type"] == resource_type}


def policy_statements(template_json: dict[str, Any], role: str = "ProcessingRole") -> list[dict[str, Any]]:
    """Every statement of the IAM policies attached to the role whose logical id starts
    with `role` (the processing function's, by default; the rebuild workflow's roles
    have tests of their own)."""
    statements = []
    for policy in resources_of(template_json, "AWS::IAM::Policy").values():
        roles = [r.get("Ref", "") for r in policy["Properties"].get("Roles", [])]
        if any(r.startswith(role) for r in roles):
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)
