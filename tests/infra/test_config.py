"""Context → ProcessingConfig: defaults, `-c` text values, and clear refusals."""

from __future__ import annotations

import pytest

from cdk_app.config import ConfigError, ProcessingConfig


def _from(**context):
    return ProcessingConfig.from_context(context.get)


def test_defaults():
    config = _from()
    assert config == ProcessingConfig()
    assert config.stage == "dev"
    assert config.ssm_prefix == "/totesys/dev/processing"
    assert config.metric_namespace == "TotesysProcessing/dev"
    assert config.resolved_stack_name == "TotesysProcessing-dev"
    assert config.require_bytecode is True
    assert config.architecture == "arm64"
    assert config.alarm_emails == ()
    assert config.ingestion_bucket is None and config.processed_bucket is None
    assert config.bundle is True


def test_text_values_from_the_command_line_are_coerced():
    config = _from(memory_mb="4096", timeout_seconds="900", bundle="false",
                   alarm_emails="a@example.com, b@example.com", ingestion_role_arn="")  # fmt: skip
    assert config.memory_mb == 4096 and config.timeout_seconds == 900
    assert config.bundle is False
    assert config.alarm_emails == ("a@example.com", "b@example.com")
    assert config.ingestion_role_arn is None


def test_the_stage_names_the_stack_the_namespace_and_the_parameters():
    config = _from(stage="prod")
    assert (config.resolved_stack_name, config.metric_namespace, config.ssm_prefix) == (
        "TotesysProcessing-prod", "TotesysProcessing/prod", "/totesys/prod/processing")
    assert _from(stage="prod", stack_name="Totes").resolved_stack_name == "Totes"


def test_json_values_from_cdk_json():
    config = _from(memory_mb=2048, bundle=False, alarm_emails=["ops@example.com"])
    assert (config.memory_mb, config.bundle, config.alarm_emails) == (2048, False, ("ops@example.com",))


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"memory_mb": "lots"}, "memory_mb: 'lots' is not a whole number"),
        ({"memory_mb": 64}, "memory_mb: 64 is not between 128 and 10240"),
        ({"timeout_seconds": 901}, "timeout_seconds: 901 is not between 1 and 900"),
        ({"architecture": "arm"}, "architecture: 'arm' is not one of"),
        ({"log_level": "LOUD"}, "log_level: 'LOUD'"),
        ({"log_retention_days": 10}, "log_retention_days: 10 is not one of"),
        ({"stage": "Prod"}, "stage: 'Prod' is not lower-case"),
        ({"stage": "prod/eu"}, "stage"),
        ({"stage": ""}, "stage"),
        ({"ingestion_bucket": "Not_A_Bucket"}, "ingestion_bucket"),
        ({"ingestion_bucket": "same-bucket", "processed_bucket": "same-bucket"}, "different buckets"),
        ({"alarm_emails": "ops@example.com,not-an-email"}, "alarm_emails: 'not-an-email'"),
        ({"alarm_emails": "a@example.com,a@example.com"}, "names an address twice"),
        ({"bundle": "maybe"}, "bundle: 'maybe' is not true or false"),
        ({"ingestion_role_arn": "arn:aws:iam::123:role/x"}, "ingestion_role_arn"),
        ({"ingestion_role_arn": "arn:aws:lambda:eu-west-2:123456789012:function:ingestion"}, "execution role"),
        ({"stack_name": "9lives"}, "stack_name"),
    ],
)
def test_bad_values_fail_naming_the_key(context, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _from(**context)


def test_every_accepted_log_retention_maps_to_a_cloudwatch_value():
    from aws_cdk import aws_logs as logs

    from cdk_app.config import LOG_RETENTION_DAYS
    from cdk_app.processing_stack import _retention

    for days in LOG_RETENTION_DAYS:
        assert isinstance(_retention(days), logs.RetentionDays)


def test_an_unknown_context_key_is_refused_naming_it_the_closest_and_the_valid_keys():
    from cdk_app.config import check_context_keys

    with pytest.raises(ConfigError) as refused:
        check_context_keys(["stagee", "@aws-cdk/core:checkSecretUsage", "aws:cdk:version-reporting"])
    message = str(refused.value)
    assert "unknown context key 'stagee' (did you mean stage?)" in message
    assert "stage, stack_name, ingestion_bucket" in message
    check_context_keys(["stage", "memory_mb", "availability-zones:account=1:region=x", "acknowledged-issue-numbers"])


@pytest.mark.parametrize("context, says", [
    ({"memory_mb": "lots"}, "memory_mb: 'lots' is not a whole number"),
    ({"stage": "Prod\u0430" * 1000}, "characters) is not lower-case"),
    ({"freshness_hours": "200"}, "freshness_hours: 200 is not between 0 (off) and 168 hours"),
    ({"runbook_url": "javascript:alert(1)"}, "runbook_url"),
    ({"ingestion_bucket_kms_key_arn": "arn:aws:kms:eu-west-2:123456789012:key/abc"}, "pass ingestion_bucket too"),
    ({"processed_bucket": "b-1", "processed_bucket_kms_key_arn": "alias/x"}, "is not a KMS key ARN"),
])
def test_bad_values_are_one_bounded_line_naming_the_key(context, says):
    with pytest.raises(ConfigError) as refused:
        _from(**context)
    assert says in str(refused.value) and "\n" not in str(refused.value) and len(str(refused.value)) < 1000


def test_the_app_refuses_a_mistyped_key_in_one_line_without_a_traceback():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "CDK_CONTEXT_JSON": '{"stagee": "prod"}', "CDK_OUTDIR": "/nonexistent"}
    done = subprocess.run([sys.executable, "app.py"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "cdk context refused: unknown context key 'stagee' (did you mean stage?); the settings are: "
        + ", ".join(ProcessingConfig.defaults())
    ]


def test_the_cloud_assembly_keeps_only_the_stage_just_synthesized(tmp_path):
    import app

    for name in ("TotesysProcessing-dev", "TotesysProcessing-prod"):
        (tmp_path / f"{name}.template.json").write_text("{}")
        (tmp_path / f"{name}.assets.json").write_text("{}")
    (tmp_path / "asset.abc123").mkdir()  # the asset cache stays
    removed = app.keep_only(tmp_path, "TotesysProcessing-prod")
    assert sorted(removed) == ["TotesysProcessing-dev.assets.json", "TotesysProcessing-dev.template.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "TotesysProcessing-prod.assets.json", "TotesysProcessing-prod.template.json", "asset.abc123"]
