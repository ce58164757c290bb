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
