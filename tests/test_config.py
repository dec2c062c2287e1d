import pytest

from measure.config import ConfigError, InsecureEndpointError, check_endpoint, load

BASE = {"MEASURE_ADVERTISER_ID": "877", "MEASURE_SITE_IDS": '{"pc/steam": "2960", "PS5/PlayStation": 3001}'}


def test_defaults():
    config = load(BASE)
    assert config.endpoint == "https://877.measure.mobileapptracking.com/serve"
    assert config.site_id("pc", "steam") == "2960"
    assert config.site_id("ps5", "playstation") == "3001"  # keys normalised like events' platform/storefront
    assert (config.events_topic, config.retry_topic, config.retry_subscription, config.dead_letter_topic) == (
        "measure-events", "measure-retry", "measure-retry-sweeper", "measure-dead-letter")
    assert config.consumer_key_secret == "measure-consumer-key"
    assert config.retry_max_age == 7 * 86400 and config.event_max_age == 30 * 86400
    assert (config.api_timeout, config.breaker_cooldown, config.secret_ttl, config.sweep_budget) == (10, 30, 300, 240)
    assert config.retry_schedule == (30, 120, 600, 3600, 21600, 86400)


def test_retry_schedule_is_read_at_load():
    assert load({**BASE, "MEASURE_RETRY_SCHEDULE": " 0.5, 1,2 "}).retry_schedule == (0.5, 1.0, 2.0)


def test_local_secret_values_are_not_in_repr():
    config = load({**BASE, "MEASURE_PRIVATE_KEY": "very-secret"})
    assert config.private_key == "very-secret"
    assert "very-secret" not in repr(config)


@pytest.mark.parametrize(
    ("env", "name", "fragment"),
    [
        ({}, "MEASURE_ADVERTISER_ID", "required"),
        ({"MEASURE_ADVERTISER_ID": "abc"}, "MEASURE_ADVERTISER_ID", "digits"),
        ({"MEASURE_SITE_IDS": ""}, "MEASURE_SITE_IDS", "required"),
        ({"MEASURE_SITE_IDS": "{nope"}, "MEASURE_SITE_IDS", "not valid JSON"),
        ({"MEASURE_SITE_IDS": "[]"}, "MEASURE_SITE_IDS", "non-empty JSON object"),
        ({"MEASURE_SITE_IDS": '{"pc": "1"}'}, "MEASURE_SITE_IDS", "'<platform>/<storefront>'"),
        ({"MEASURE_SITE_IDS": '{"pc/steam": "x1"}'}, "MEASURE_SITE_IDS", "digits"),
        ({"MEASURE_ENDPOINT": "http://example.com/serve"}, "MEASURE_ENDPOINT", "https"),
        ({"MEASURE_ENDPOINT": "ftp://x/serve"}, "MEASURE_ENDPOINT", "http(s)"),
        ({"MEASURE_RETRY_MAX_AGE": "99999999"}, "MEASURE_RETRY_MAX_AGE", "between"),
        ({"MEASURE_SECRET_TTL": "5m"}, "MEASURE_SECRET_TTL", "whole number"),
        ({"MEASURE_API_TIMEOUT": "0"}, "MEASURE_API_TIMEOUT", "between 1 and 120"),
        ({"MEASURE_BREAKER_COOLDOWN": "-1"}, "MEASURE_BREAKER_COOLDOWN", "whole number"),
        ({"MEASURE_RETRY_SCHEDULE": "soon"}, "MEASURE_RETRY_SCHEDULE", "comma-separated seconds"),
        ({"MEASURE_RETRY_SCHEDULE": "1,,4"}, "MEASURE_RETRY_SCHEDULE", "comma-separated seconds"),
        ({"MEASURE_RETRY_SCHEDULE": "1,-2"}, "MEASURE_RETRY_SCHEDULE", "between 0 and"),
        ({"MEASURE_RETRY_SCHEDULE": "1,nan"}, "MEASURE_RETRY_SCHEDULE", "between 0 and"),
        ({"MEASURE_RETRY_SCHEDULE": "inf"}, "MEASURE_RETRY_SCHEDULE", "between 0 and"),
    ],
)
def test_each_bad_setting_is_named(env, name, fragment):
    with pytest.raises(ConfigError) as info:
        load({**BASE, **env} if env else {})
    assert info.value.name == name
    assert fragment in str(info.value)
    assert str(info.value).startswith(name)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8090/serve", "http://localhost/serve", "http://[::1]:1/serve",
                                 "https://example.com/serve"])
def test_https_or_loopback_allowed(url):
    assert check_endpoint(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1/serve", "http://877.measure.mobileapptracking.com/serve",
                                 "http://localhost.evil.com/serve"])
def test_plain_http_elsewhere_refused(url):
    with pytest.raises(InsecureEndpointError):
        check_endpoint(url)


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("MEASURE_SITE_IDS", "{not json", "MEASURE_SITE_IDS: is not valid JSON"),
    # Read at start like every other setting, not on the first send (which would then fail every event).
    ("MEASURE_RETRY_SCHEDULE", "30,2m", "MEASURE_RETRY_SCHEDULE: must be comma-separated seconds"),
])
def test_a_bad_setting_stops_the_function_at_start_with_one_log_line_naming_it(setting, value, message):
    import json
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", **BASE, setting: value}
    result = subprocess.run([sys.executable, "-c", "import main"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode != 0
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert record["severity"] == "CRITICAL" and record["setting"] == setting
    assert message in record["message"]
