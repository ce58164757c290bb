import pytest

from runtime.errors import ConfigError
from runtime.settings import Settings


def test_defaults_apply_when_optional_settings_are_absent():
    settings = Settings.from_env({"INGESTION_BUCKET": "in-bucket", "PROCESSED_BUCKET": "out-bucket"})
    assert settings == Settings("in-bucket", "out-bucket", "/totesys/processing", "INFO")


def test_every_missing_or_bad_setting_is_named():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"PROCESSED_BUCKET": "Bad_Bucket", "SSM_PREFIX": "no-slash", "LOG_LEVEL": "LOUD"})
    message = str(error.value)
    for name in ("INGESTION_BUCKET is not set", "PROCESSED_BUCKET='Bad_Bucket'", "SSM_PREFIX", "LOG_LEVEL"):
        assert name in message


def test_the_same_bucket_for_both_is_refused():
    with pytest.raises(ConfigError, match="must differ"):
        Settings.from_env({"INGESTION_BUCKET": "same-bucket", "PROCESSED_BUCKET": "same-bucket"})


def test_trailing_slash_of_the_prefix_is_dropped():
    settings = Settings.from_env(
        {"INGESTION_BUCKET": "in-bucket", "PROCESSED_BUCKET": "out-bucket", "SSM_PREFIX": "/a/b/", "LOG_LEVEL": "debug"}
    )
    assert (settings.ssm_prefix, settings.log_level) == ("/a/b", "DEBUG")


def test_the_wait_alarm_age_is_read_in_hours_and_checked():
    base = {"INGESTION_BUCKET": "in-bucket", "PROCESSED_BUCKET": "out-bucket"}
    assert Settings.from_env(base).wait_alarm_hours == 24
    assert Settings.from_env(base | {"WAIT_ALARM_HOURS": "6.5"}).wait_alarm_hours == 6.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(ConfigError, match="WAIT_ALARM_HOURS"):
            Settings.from_env(base | {"WAIT_ALARM_HOURS": bad})
