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
    for bad in ("0", "-1", "nan", "inf", "soon", "9" * 5000, "\uff11\uff12"):
        with pytest.raises(ConfigError, match="WAIT_ALARM_HOURS"):
            Settings.from_env(base | {"WAIT_ALARM_HOURS": bad})


def test_the_stop_margin_defaults_and_can_be_set():
    base = {"INGESTION_BUCKET": "in-bucket", "PROCESSED_BUCKET": "out-bucket"}
    assert Settings.from_env(base).stop_margin_seconds == 120
    assert Settings.from_env({**base, "STOP_MARGIN_SECONDS": "45"}).stop_margin_seconds == 45


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "abc", "901", "9" * 5000, "\uff11\uff12"])
def test_a_bad_stop_margin_is_named(value):
    with pytest.raises(ConfigError, match="STOP_MARGIN_SECONDS"):
        Settings.from_env({"INGESTION_BUCKET": "in-bucket", "PROCESSED_BUCKET": "out-bucket",
                           "STOP_MARGIN_SECONDS": value})


@pytest.mark.parametrize("name", ["INGESTION_BUCKET", "SSM_PREFIX", "LOG_LEVEL", "STOP_MARGIN_SECONDS",
                                  "WAIT_ALARM_HOURS"])
def test_a_huge_or_look_alike_value_is_quoted_bounded_and_in_ascii(name):
    env = {"INGESTION_BUCKET": "in-bucket", "PROCESSED_BUCKET": "out-bucket"}
    for value in ("\u0430" * 100_000, "b\u0435ta-bucket"):
        with pytest.raises(ConfigError) as error:
            Settings.from_env({**env, name: value})
        message = str(error.value)
        assert len(message) <= 1000 and message.isascii(), message[:200]
        assert "\\u04" in message  # the look-alike letter, shown as its escape
