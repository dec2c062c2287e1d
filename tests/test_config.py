import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from measure.config import ConfigError, InsecureEndpointError, check_endpoint, load

REPO = Path(__file__).resolve().parent.parent

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


# --- the endpoint rule: Python's equals Terraform's ----------------------------------------------
# One table, fed to check_endpoint and to Terraform's own validation of endpoint_override
# (terraform/variables.tf, evaluated by `terraform console`). `deployable` is both verdicts for
# a deployment; LOCAL_ONLY are the loopback URLs a local run (the sandbox) needs, which
# Terraform refuses and Python accepts: the only difference between the two.
ENDPOINT_CASES: list[tuple[str, bool]] = [
    ("https://877.measure.mobileapptracking.com/serve", True),
    ("https://staging.example.com:8443/serve", True),
    ("https://api.example.com./serve", True),
    ("https://API.Example.COM/serve?x=1#f", True),
    ("https://a-b.example.co/serve", True),
    ("http://api.example.com/serve", False),
    ("HTTPS://api.example.com/serve", False),
    ("https://10.0.0.1/serve", False),
    ("https://169.254.169.254/computeMetadata/v1/", False),
    ("https://192.168.1.10:8443/serve", False),
    ("https://8.8.8.8/serve", False),
    ("https://[2001:db8::1]/serve", False),
    ("https://[::ffff:10.0.0.1]/serve", False),
    ("https://2130706433/serve", False),
    ("https://0x7f.1/serve", False),
    ("https://user@api.example.com/serve", False),
    ("https://127.0.0.1@evil.example/serve", False),
    ("https://api.example.com/se rve", False),
    ("https://api.example.com/serve\n", False),
    ("https://api.localhost/serve", False),
    ("https://localtest.me/serve", False),
    ("https://lvh.me/serve", False),
    ("https://127.0.0.1.nip.io/serve", False),
    ("https://app-127-0-0-1.sslip.io/serve", False),
    ("https://host.localdomain/serve", False),
    ("https://-bad.example.com/serve", False),
    ("https://example.123/serve", False),
    ("https:///serve", False),
    ("https://", False),
    ("ftp://api.example.com/serve", False),
    ("//api.example.com/serve", False),
]
LOCAL_ONLY = ["http://127.0.0.1:8090/serve", "http://127.9.9.9/serve", "http://localhost:8090/serve",
              "http://[::1]:8090/serve", "https://127.0.0.1:8443/serve", "https://localhost/serve"]


def python_accepts(url: str) -> bool:
    try:
        check_endpoint(url)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(("url", "deployable"), ENDPOINT_CASES)
def test_the_endpoint_rule_is_terraforms_for_every_url_but_loopback(url, deployable):
    assert python_accepts(url) is deployable


@pytest.mark.parametrize("url", LOCAL_ONLY)
def test_a_local_run_may_point_at_the_sandbox_on_loopback(url):
    assert python_accepts(url)


def terraform_accepts(workdir, url: str) -> bool:
    """Terraform's verdict on endpoint_override = url, from the variable block as written in
    terraform/modules/measure/variables.tf (no provider needed: `terraform console` checks the validations)."""
    offline = os.environ.get("TF_OFFLINE", "")
    terraform = shutil.which("terraform")
    if terraform:
        argv = [terraform, "console", "-var", f"endpoint_override={url}"]
    elif offline:
        argv = [offline, str(workdir), "console", "-var", f"endpoint_override={url}"]
    else:
        pytest.fail("terraform is not on PATH and TF_OFFLINE is not set: the endpoint rule cannot be compared")
    done = subprocess.run(argv, cwd=workdir, input="var.endpoint_override\n", capture_output=True, text=True,
                          timeout=60, env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"})
    output = done.stdout + done.stderr
    assert "Invalid value for variable" in output or done.returncode == 0, output
    return "Invalid value for variable" not in output


def test_terraform_gives_the_same_verdict_on_every_case(tmp_path):
    module_variables = REPO / "terraform" / "modules" / "measure" / "variables.tf"
    block = re.search(r'^variable "endpoint_override" \{.*?^\}', module_variables.read_text(), re.S | re.M)
    assert block, "terraform/modules/measure/variables.tf has no endpoint_override variable"
    (tmp_path / "main.tf").write_text(block.group(0) + "\n")
    cases = [*ENDPOINT_CASES, *((url, False) for url in LOCAL_ONLY)]
    verdicts = {url: terraform_accepts(tmp_path, url) for url, _ in cases if "\n" not in url}
    assert verdicts == {url: deployable for url, deployable in cases if "\n" not in url}


def test_short_local_webhook_tokens_stop_the_function_at_start():
    with pytest.raises(ConfigError, match=r"MEASURE_WEBHOOK_TOKENS: line\(s\) 2: a token must be at least 32"):
        load({**BASE, "MEASURE_WEBHOOK_TOKENS": "a" * 32 + "\nshort"})


def test_the_secret_ttl_is_capped():
    assert load({**BASE, "MEASURE_SECRET_TTL": "900"}).secret_ttl == 900
    with pytest.raises(ConfigError, match="MEASURE_SECRET_TTL: must be between 0 and 900"):
        load({**BASE, "MEASURE_SECRET_TTL": "86400"})
