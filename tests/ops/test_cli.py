"""The command line, run as a user runs it: `python -m measure ...` in a subprocess."""

import json
import subprocess
import sys

import pytest

from measure.dev.sandbox import Sandbox
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, base_env


def measure(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "measure", *args], capture_output=True, text=True, timeout=60,
                            env=env)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_sign_reproduces_the_seeds_first_truth_vector():
    out = measure("sign", "--method", "GET", "--url", "https://engine.mobileapptracking.com/serve",
                  "--timestamp", "1406146778", "--private-key", "adv1",
                  "--consumer-key", "18d84eb30b59b5f3cc748bfe9f68b472").stdout
    assert "signature: ur3aUlwbRXGcxxt0EvDa2BQTqkCUjb4RdHww1S5EAWY" in out
    assert "mat-consumer-key: 18d84eb30b59b5f3cc748bfe9f68b472" in out
    assert "mat-timestamp: 1406146778" in out
    assert "  engine.mobileapptracking.com\n  /serve\n" in out


def test_sign_post_with_params_and_verify():
    out = measure("sign", "--private-key", "adv1", "--timestamp", "1406146778",
                  "var1=blue", "meow=+-=", "alpha=beta").stdout
    assert "signature: _2fqNArAgJO3vvtE0ff3XZ3mYSsnIbu5Ynkaw-S-o-c" in out
    ok = measure("verify", "--private-key", "adv1", "--timestamp", "1406146778", "--ignore-time",
                 "--signature", "_2fqNArAgJO3vvtE0ff3XZ3mYSsnIbu5Ynkaw-S-o-c", "var1=blue", "meow=+-=", "alpha=beta")
    assert ok.stdout.strip() == "valid"
    bad = measure("verify", "--private-key", "adv1", "--timestamp", "1406146778", "--ignore-time",
                  "--signature", "nope", "var1=blue", check=False)
    assert bad.returncode == 1 and "signature mismatch" in bad.stdout


def test_repeated_parameter_is_refused_clearly():
    result = measure("sign", "--private-key", "k", "a=1", "a=2", check=False)
    assert result.returncode != 0 and "'a' given twice" in result.stderr


def test_link_encrypt_decrypt_round_trip_and_build():
    keys = ["--consumer-key", "STRING32CHARACTERS11223344556677", "--private-key", "x" * 32]
    data = measure("link", "encrypt", *keys, "cost=0.01", "cost_model=cpc").stdout.strip()
    assert len(data) == 64 and data == data.lower()
    assert json.loads(measure("link", "decrypt", *keys, data).stdout) == {"cost": "0.01", "cost_model": "cpc"}
    url = measure("link", "build", *keys, "--publisher-id", "19228", "--encrypt", "cost", "site_id=2962",
                  "cost=0.01").stdout.strip()
    assert url.startswith("https://19228.measure.mobileapptracking.com/serve?action=click")
    assert "ckey=STRING32CHARACTERS11223344556677" in url and "cost=" not in url
    bad = measure("link", "encrypt", "--consumer-key", "short", "--private-key", "x" * 32, "a=1", check=False)
    assert bad.returncode == 1 and "consumer key" in bad.stderr.lower()


def test_explain_a_seed_example_and_a_bad_call():
    out = measure("explain", "action=conversion&site_event_name=review_submitted").stdout
    assert "created automatically" in out
    bad = measure("explain", "site_event_name=x", check=False)
    assert bad.returncode == 2 and "no action" in bad.stderr


def test_send_one_event_to_the_sandbox():
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as sandbox:
        env = {**base_env(sandbox.serve_url), "PATH": "/usr/bin:/bin"}
        out = measure("send", "--user-id", "u1", "--ip", "175.124.248.15", "--platform", "pc",
                      "--storefront", "steam", env=env).stdout
        result = json.loads(out)
        assert result["outcome"] == "delivered" and result["log_id"]
        (seen,) = sandbox.requests(transaction_id=result["event_id"])
        assert seen["outcome"] == "accepted"
        invalid = measure("send", "--user-id", "u1", "--ip", "10.1.2.3", "--platform", "pc", "--storefront", "steam",
                          env=env, check=False)
        assert invalid.returncode == 1 and "ip" in invalid.stderr


@pytest.mark.parametrize("command", ["sign", "verify", "send", "link", "explain", "sandbox", "dev", "backfill",
                                     "dead-letters"])
def test_every_command_has_help(command):
    assert "usage" in measure(command, "--help").stdout.lower()
