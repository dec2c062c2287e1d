"""The local stack (`make run`): configuration and port checks, then the whole pipeline end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from measure.tools.devstack import (
    DEFAULT_PORTS,
    REPO_ROOT,
    DevConfig,
    DevStack,
    DevStackError,
    main,
)
from measure.tools.emulator import PortInUseError, accepts_connections, free_port, group_members, spawn


def free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(DEFAULT_PORTS):
        ports = {name: free_port() for name in DEFAULT_PORTS}
    return ports


def config(tmp_path: Path, **overrides) -> DevConfig:
    return DevConfig.from_env({}, state_dir=tmp_path / ".run", **{f"{k}_port": v for k, v in free_ports().items()},
                              **overrides)


# ---------------------------------------------------------------- configuration, no processes


def test_ports_come_from_the_environment_then_flags():
    env = {"MEASURE_DEV_RECEIVE_PORT": "9080", "MEASURE_DEV_EMULATOR_PORT": "9085"}
    c = DevConfig.from_env(env, emulator_port=9185)
    assert c.ports == {**DEFAULT_PORTS, "receive": 9080, "emulator": 9185}


def test_a_bad_port_names_its_variable():
    with pytest.raises(DevStackError, match="MEASURE_DEV_SEND_PORT: 'http' is not a port"):
        DevConfig.from_env({"MEASURE_DEV_SEND_PORT": "http"})


def test_a_bad_sweep_interval_names_its_variable():
    with pytest.raises(DevStackError, match="MEASURE_DEV_SWEEP_EVERY: '0' is not a positive number"):
        DevConfig.from_env({"MEASURE_DEV_SWEEP_EVERY": "0"})


def test_part_of_the_real_api_settings_is_an_error_naming_the_rest():
    with pytest.raises(DevStackError, match="MEASURE_ENDPOINT set but MEASURE_CONSUMER_KEY, MEASURE_PRIVATE_KEY not"):
        DevConfig.from_env({"MEASURE_ENDPOINT": "https://877.measure.mobileapptracking.com/serve"})


def test_the_real_api_replaces_the_sandbox():
    c = DevConfig.from_env({"MEASURE_ENDPOINT": "https://877.measure.mobileapptracking.com/serve",
                            "MEASURE_CONSUMER_KEY": "ck", "MEASURE_PRIVATE_KEY": "pk",
                            "MEASURE_ADVERTISER_ID": "1234", "MEASURE_SITE_IDS": '{"pc/epic": "1"}'})
    stack = DevStack(c)
    assert stack.sandbox_url is None
    assert "sandbox" not in stack.logs
    env = stack.function_env()
    assert env["MEASURE_ENDPOINT"] == "https://877.measure.mobileapptracking.com/serve"
    assert (env["MEASURE_CONSUMER_KEY"], env["MEASURE_PRIVATE_KEY"]) == ("ck", "pk")
    assert (env["MEASURE_ADVERTISER_ID"], json.loads(env["MEASURE_SITE_IDS"])) == ("1234", {"pc/epic": "1"})


def test_function_env_is_the_contract_with_main_py(tmp_path):
    stack = DevStack(config(tmp_path))
    env = stack.function_env()
    assert set(env) == {"MEASURE_ADVERTISER_ID", "MEASURE_SITE_IDS", "MEASURE_ENDPOINT", "MEASURE_CONSUMER_KEY",
                        "MEASURE_PRIVATE_KEY", "MEASURE_WEBHOOK_TOKENS", "GOOGLE_CLOUD_PROJECT",
                        "PUBSUB_EMULATOR_HOST", "MEASURE_EVENTS_TOPIC", "MEASURE_RETRY_TOPIC",
                        "MEASURE_RETRY_SUBSCRIPTION", "MEASURE_DEAD_LETTER_TOPIC"}
    assert env["MEASURE_ENDPOINT"] == f"{stack.sandbox_url}/serve"
    assert env["MEASURE_WEBHOOK_TOKENS"] == stack.token
    assert env["PUBSUB_EMULATOR_HOST"] == stack.emulator_host


def test_curl_command_posts_the_seed_fields_with_a_fresh_time_stamp(tmp_path):
    stack = DevStack(config(tmp_path))
    command = stack.curl_command()
    assert command.startswith(f"curl -sS -X POST {stack.webhook_url}")
    assert f"Authorization: Bearer {stack.token}" in command
    assert "-d user_id=1a23fd44c21f8l5r" in command and '-d "time_stamp=$(date +%s)"' in command


def test_a_busy_port_fails_before_anything_starts_and_says_how_to_choose_another(tmp_path):
    c = config(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", c.ports["sweep"]))
        holder.listen()
        stack = DevStack(c)
        with pytest.raises(PortInUseError) as raised:
            stack.start()
    message = str(raised.value)
    assert f"port {c.ports['sweep']} (sweep) is already in use" in message
    assert "--sweep-port N" in message and "MEASURE_DEV_SWEEP_PORT=N make run" in message
    assert stack.services == {} and stack.emulator is None


def test_two_components_on_one_port_is_an_error(tmp_path):
    c = config(tmp_path)
    c.ports["send"] = c.ports["receive"]
    with pytest.raises(DevStackError, match=f"receive and send are both given port {c.ports['receive']}"):
        DevStack(c).start()


def test_main_reports_a_busy_port_and_exits_1(tmp_path, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        args = ["--state-dir", str(tmp_path / ".run"), "--receive-port", str(port)]
        for name, p in free_ports().items():
            if name != "receive":
                args += [f"--{name}-port", str(p)]
        assert main(args) == 1
    assert f"port {port} (receive) is already in use" in capsys.readouterr().err


def test_a_leftover_group_from_a_killed_run_is_stopped(tmp_path):
    state = tmp_path / ".run"
    state.mkdir()
    argv = ["sleep", "60"]
    leftover = spawn(argv, log_path=tmp_path / "sleep.log")
    # Until it has exec'd, the child still shows this Python's command line.
    while Path(f"/proc/{leftover.pid}/cmdline").read_bytes() != b"sleep\x0060\x00":
        time.sleep(0.01)
    (state / "pids.json").write_text(json.dumps({"send": {"pgid": leftover.pid, "argv": argv}}))
    c = config(tmp_path)
    with socket.socket() as holder:  # stop the start right after the clean-up
        holder.bind(("127.0.0.1", c.ports["receive"]))
        holder.listen()
        with pytest.raises(PortInUseError):
            DevStack(c).start()
    leftover.wait(timeout=10)
    assert group_members(leftover.pid) == []


def test_a_recycled_pid_is_left_alone(tmp_path):
    state = tmp_path / ".run"
    state.mkdir()
    bystander = spawn(["sleep", "60"], log_path=tmp_path / "sleep.log")
    try:
        (state / "pids.json").write_text(json.dumps({"send": {"pgid": bystander.pid, "argv": ["other", "cmd"]}}))
        c = config(tmp_path)
        c.ports["send"] = c.ports["receive"]
        with pytest.raises(DevStackError):
            DevStack(c).start()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.emulator
def test_the_seed_event_and_a_second_one_reach_the_sandbox(tmp_path):
    stack = DevStack(config(tmp_path, sweep_every=1.0))
    stack.start()
    groups = stack.process_groups()
    ports = dict(stack.config.ports)
    try:
        print(f"stack up in {stack.start_seconds:.1f} s (emulator {stack.emulator.start_seconds:.1f} s)")
        now = int(time.time())
        answer = stack.post_event(time_stamp=now)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["accepted"] == 1
        [event_id] = body["event_ids"]

        [seen] = stack.wait_delivered(event_id, timeout=30)
        assert seen["outcome"] == "accepted" and seen["signature"] == "valid" and seen["log_id"]
        params = seen["params"]
        assert params["transaction_id"] == event_id
        assert (params["action"], params["site_id"], params["advertiser_id"]) == ("session", "2960", "877")
        assert (params["user_id"], params["device_ip"], params["system_date"]) == (
            "1a23fd44c21f8l5r", "175.124.248.15", str(now))

        # What the printed curl command does: a form post with the Bearer token.
        second = requests.post(stack.webhook_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30,
                               data={"user_id": "u-second", "event_name": "level_achieved", "ip": "175.124.248.16",
                                     "time_stamp": str(now), "platform": "pc", "storefront": "steam"})
        assert second.status_code == 202, second.text
        [second_id] = second.json()["event_ids"]
        [seen] = stack.wait_delivered(second_id, timeout=30)
        assert seen["params"]["action"] == "level_achieved" and seen["outcome"] == "accepted"

        assert requests.post(stack.webhook_url, data={"user_id": "x"}, timeout=10).status_code == 401
        deadline = time.monotonic() + 10
        while "200 {" not in stack.logs["scheduler"].read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "200 {" in stack.logs["scheduler"].read_text(), "the local scheduler never got a 200 from sweep"
    finally:
        stack.stop()
    assert [g for g in groups if group_members(g)] == []
    assert not any(accepts_connections(p) for p in ports.values())  # nothing listens any more
    assert not (stack.state_dir / "pids.json").exists()


@pytest.mark.slow
@pytest.mark.emulator
def test_ctrl_c_on_make_run_stops_every_process(tmp_path):
    state = tmp_path / ".run"
    args = ["--state-dir", str(state), "--no-seed"]
    for name, port in free_ports().items():
        args += [f"--{name}-port", str(port)]
    out = tmp_path / "dev.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "measure", "dev", *args], cwd=REPO_ROOT, stdout=sink,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.2)
        assert "Ctrl-C stops everything" in out.read_text(), out.read_text()
        groups = [entry["pgid"] for entry in json.loads((state / "pids.json").read_text()).values()]
        assert len(groups) == 5
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "no process left behind" in out.read_text()
    assert [g for g in groups if group_members(g)] == []
