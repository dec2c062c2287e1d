"""`python -m measure sandbox`: fault flags, key pair, busy port, bad definitions, Ctrl-C."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from measure.dev.sandbox import FaultsError, build_parser, faults_from_args, main
from tests.dev.sandbox.client import AUTH, CONSUMER, PRIVATE, event

ROOT = Path(__file__).resolve().parents[3]


def args(*argv):
    return build_parser().parse_args(list(argv))


def test_cli_fail_rate_is_shared_by_the_status_codes():
    assert faults_from_args(args("--fail-rate", "0.3", "--status", "500,503")).status == {500: 0.15, 503: 0.15}
    assert faults_from_args(args("--fail-rate", "0.1")).status == {500: 0.1}
    assert faults_from_args(args("--status", "500=0.3,429=0.05")).status == {500: 0.3, 429: 0.05}
    with pytest.raises(FaultsError):
        faults_from_args(args("--status", "500"))


def test_cli_duplicate_window_defaults_to_the_retry_age():
    from measure.config import Config

    assert build_parser().parse_args([]).duplicate_window == Config.retry_max_age


def test_cli_outage_forms():
    absolute = faults_from_args(args("--outage", "1700000000:1700000600"))
    assert (absolute.outage_start, absolute.outage_end) == (1700000000, 1700000600)
    iso = faults_from_args(args("--outage", "2023-11-14T22:13:20Z/2023-11-14T22:23:20Z"))
    assert (iso.outage_start, iso.outage_end) == (1700000000, 1700000600)
    relative = faults_from_args(args("--outage-for", "5", "--outage-mode", "drop"), now=100)
    assert (relative.outage_start, relative.outage_end, relative.outage_mode) == (100, 105, "drop")
    with pytest.raises(FaultsError):
        faults_from_args(args("--outage", "soon:later"))


def test_cli_needs_a_key_pair(monkeypatch, capsys):
    monkeypatch.delenv("MEASURE_CONSUMER_KEY", raising=False)
    monkeypatch.delenv("MEASURE_PRIVATE_KEY", raising=False)
    assert main(["--port", "0"]) == 2
    assert "MEASURE_PRIVATE_KEY" in capsys.readouterr().err


def test_cli_reports_a_busy_port(sandbox, capsys):
    port = sandbox.url.rsplit(":", 1)[1]
    assert main(["--port", port, "--consumer-key", CONSUMER, "--private-key", PRIVATE]) == 1
    err = capsys.readouterr().err
    assert "already in use" in err and PRIVATE not in err


def test_cli_reports_bad_definitions(tmp_path, capsys):
    bad = tmp_path / "events.json"
    bad.write_text('[{"id": 1, "name": "Login"}]')
    argv = ["--port", "0", "--consumer-key", CONSUMER, "--private-key", PRIVATE, "--definitions", str(bad)]
    assert main(argv) == 2
    assert "field 'type' is missing" in capsys.readouterr().err


def test_cli_serves_until_ctrl_c(session):
    env = dict(os.environ, MEASURE_CONSUMER_KEY=CONSUMER, MEASURE_PRIVATE_KEY=PRIVATE,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MEASURE_ADVERTISER_ID", None)
    command = [sys.executable, "-c", "import sys; from measure.dev.sandbox import main; sys.exit(main())",
               "--port", "0", "--definitions", str(ROOT / "examples" / "events.json")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group(0)
        answer = session.post(f"{url}/serve", data=event(action="login"), auth=AUTH, timeout=5).json()
        assert answer["success"] is True and answer["resolution"]["event"]["name"] == "Login"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "stopped" in err
    assert PRIVATE not in banner + out + err
