"""The local stack (`make run`): configuration and port checks, then the whole pipeline end to end,
with send pushed as Eventarc pushes it (measure/dev/pushrelay.py), not by the emulator."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from measure.dev.devstack import (
    DEFAULT_PORTS,
    REPO_ROOT,
    DevConfig,
    DevStack,
    DevStackError,
    main,
)
from measure.dev.emulator import (
    PortInUseError,
    accepts_connections,
    end_group,
    free_port,
    group_is_ours,
    group_members,
    port_is_free,
    spawn,
    started_at,
)


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


def record_leftover(state: Path, name: str, proc: subprocess.Popen, started: float | None = None) -> None:
    """What a killed run leaves in .run/pids.json."""
    state.mkdir(exist_ok=True)
    started = started_at(proc.pid) if started is None else started
    (state / "pids.json").write_text(json.dumps({name: {"pgid": proc.pid, "started": started, "argv": proc.args}}))


def start_is_refused_after_the_clean_up(tmp_path) -> None:
    c = config(tmp_path)
    with socket.socket() as holder:  # stop the start right after the clean-up
        holder.bind(("127.0.0.1", c.ports["receive"]))
        holder.listen()
        with pytest.raises(PortInUseError):
            DevStack(c).start()


def test_a_leftover_group_from_a_killed_run_is_stopped(tmp_path):
    leftover = spawn(["sleep", "60"], log_path=tmp_path / "sleep.log")
    record_leftover(tmp_path / ".run", "send", leftover)
    start_is_refused_after_the_clean_up(tmp_path)
    leftover.wait(timeout=10)
    assert group_members(leftover.pid) == []
    assert not (tmp_path / ".run" / "pids.json").exists()


def test_a_leftover_group_whose_leader_exited_is_stopped_too(tmp_path):
    # The gcloud wrapper can die and leave its Java child running in the group: the group is
    # still recognised by its id and stopped.
    wrapper = spawn(["sh", "-c", "sleep 60 & echo started"], log_path=tmp_path / "sh.log")
    record_leftover(tmp_path / ".run", "emulator", wrapper)
    wrapper.wait(timeout=10)
    assert len(group_members(wrapper.pid)) == 1  # the orphaned sleep
    start_is_refused_after_the_clean_up(tmp_path)
    deadline = time.monotonic() + 10
    while group_members(wrapper.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(wrapper.pid) == []


def test_a_recycled_pid_is_left_alone(tmp_path):
    bystander = spawn(["sleep", "60"], log_path=tmp_path / "sleep.log")
    try:
        # The recorded leader started an hour before this process with the same pid.
        record_leftover(tmp_path / ".run", "send", bystander, started=started_at(bystander.pid) - 3600)
        start_is_refused_after_the_clean_up(tmp_path)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# ---------------------------------------------------------------- end to end


def relay_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("push-relay")]


@pytest.mark.slow
@pytest.mark.emulator
def test_the_seed_event_and_a_second_one_reach_the_sandbox_and_a_message_without_data_is_dead_lettered(tmp_path):
    stack = DevStack(config(tmp_path, sweep_every=1.0))
    stack.start()
    groups = stack.process_groups()
    ports = dict(stack.config.ports)
    names = stack.config.names
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

        # Nothing pushes measure-events but the relay: every subscription on it is a pull one (the
        # relay's, and the replay subscription that only `python -m measure replay` reads).
        emulator = f"http://{stack.emulator_host}/v1"
        readers = requests.get(f"{emulator}/projects/{stack.project}/topics/{names.events_topic}/subscriptions",
                               timeout=10).json()["subscriptions"]
        push_configs = [requests.get(f"{emulator}/{name}", timeout=10).json().get("pushConfig") for name in readers]
        assert all(not config for config in push_configs), (readers, push_configs)
        assert any(name.endswith(names.events_topic + "-push-relay") for name in readers), readers

        # A message with no data (only attributes) on measure-events: Eventarc's CloudEvent leaves
        # message.data out (functions-framework answers 400 for the legacy envelope of such a push
        # before send runs; the emulator's own push happened to send "data": "") and send
        # dead-letters it as undecodable, once.
        assert stack.topology is not None
        stack.topology.publish(names.events_topic, b"", origin="a test")
        [letter] = stack.topology.pull(names.dead_letter_subscription, timeout=30)
        body = json.loads(letter.message.data)
        assert body["dead"]["kind"] == "undecodable" and body["event"] is None and base64.b64decode(body["raw"]) == b""
        assert dict(letter.message.attributes) == {"origin": "a test", "kind": "undecodable"}
        time.sleep(1)  # a redelivery (a push not acknowledged) would be pushed again by now
        assert stack.topology.pull(names.dead_letter_subscription, timeout=1, expect=1) == []

        # Each of the three was one push, a binary-mode CloudEvent from the relay, answered 2xx.
        relay = stack.relay
        assert relay is not None and relay.endpoint == stack.send_url + "/"
        assert (relay.pulled, relay.acked, relay.released, dict(relay.failures)) == (3, 3, 0, {})
        assert f"from {relay.subscription}" in stack.summary()
        assert relay_threads()
    finally:
        stack.stop()
    assert relay_threads() == [] and stack.relay is None
    assert stack.relay_figures is not None and stack.relay_figures["acked"] == 3
    assert [g for g in groups if group_members(g)] == []
    assert not any(accepts_connections(p) for p in ports.values())  # nothing listens any more
    assert not (stack.state_dir / "pids.json").exists()


# ---------------------------------------------------------------- Ctrl-C, hang-up, SIGTERM, through a pipe


# Stands in for make and the terminal: a session of its own in which `dev ... 2>&1 | tee LOG` runs
# as one process group (the group a terminal's Ctrl-C and hang-up signal), waiting for `dev` as
# make does and exiting with its status.
TERMINAL = """
import json, signal, subprocess, sys
for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
    signal.signal(sig, lambda *_: None)  # a handler, not SIG_IGN: the children get the defaults
log, argv = sys.argv[1], sys.argv[2:]
dev = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
tee = subprocess.Popen(["tee", log], stdin=dev.stdout, stdout=subprocess.DEVNULL)
dev.stdout.close()  # tee is the pipe's only reader
print(json.dumps({"dev": dev.pid, "tee": tee.pid}), flush=True)
status = dev.wait()
tee.wait()
sys.exit(status)
"""


class PipedRun:
    """`python -m measure dev` on free ports piped into `tee`, as `make run 2>&1 | tee run.log`
    runs it in a terminal (see TERMINAL)."""

    def __init__(self, tmp_path: Path, *, seed: bool = False):
        self.state = tmp_path / ".run"
        self.ports = free_ports()
        self.out = tmp_path / "run.log"
        args = ["--state-dir", str(self.state), *(() if seed else ("--no-seed",))]
        for name, port in self.ports.items():
            args += [f"--{name}-port", str(port)]
        self.terminal = subprocess.Popen(
            [sys.executable, "-c", TERMINAL, str(self.out), sys.executable, "-m", "measure", "dev", *args],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        pids = json.loads(self.terminal.stdout.readline())
        self.dev, self.reader = psutil.Process(pids["dev"]), psutil.Process(pids["tee"])
        self.groups: list[int] = []

    def wait_running(self) -> None:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything" not in self.text() and time.monotonic() < deadline:
            assert self.terminal.poll() is None, self.text()
            time.sleep(0.2)
        assert "Ctrl-C stops everything" in self.text(), self.text()
        self.groups = [entry["pgid"] for entry in json.loads((self.state / "pids.json").read_text()).values()]
        assert len(self.groups) == 5 and all(group_members(g) for g in self.groups)

    def text(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def kill_reader(self) -> None:
        """tee dies; it stays a zombie until the terminal (blocked waiting for dev) reaps it."""
        self.reader.kill()
        deadline = time.monotonic() + 10
        with contextlib.suppress(psutil.NoSuchProcess):
            while self.reader.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
                time.sleep(0.01)

    def signal_group(self, sig: int) -> None:
        os.killpg(self.terminal.pid, sig)

    def leftovers(self) -> list[str]:
        """Every process still in the stack's groups or the terminal's, or started for this run:
        its command line names one of the run's ports (`--port N`, `--host-port=127.0.0.1:N`)."""
        pids = {pid for g in (*self.groups, self.terminal.pid) for pid in group_members(g)}
        marks = [f"--port {port}" for port in self.ports.values()] + [f":{self.ports['emulator']}"]
        for process in psutil.process_iter(["pid", "cmdline"]):
            if any(mark in " ".join(process.info["cmdline"] or ()) for mark in marks):
                pids.add(process.info["pid"])
        found = []
        for pid in sorted(pids):
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{pid} {' '.join(process.cmdline())[:120]}")
        return found

    def close(self) -> None:
        """After a failed test: end the run outright, then what it left, as the next run would."""
        if self.terminal.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.terminal.pid, signal.SIGKILL)
            self.terminal.wait()
        self.terminal.stdout.close()
        with contextlib.suppress(OSError, ValueError):
            for entry in json.loads((self.state / "pids.json").read_text()).values():
                if group_is_ours(entry["pgid"], entry["started"]):
                    end_group(entry["pgid"], grace=1)


@pytest.fixture
def piped_run(tmp_path):
    run = PipedRun(tmp_path)
    yield run
    run.close()


@pytest.mark.slow
@pytest.mark.emulator
def test_make_run_delivers_the_seed_event_through_the_relay(tmp_path):
    """`python -m measure dev` as `make run` runs it: the seed event reaches the sandbox through
    the Eventarc stand-in, whose figures the run prints when it stops."""
    run = PipedRun(tmp_path, seed=True)
    try:
        run.wait_running()
        text = run.text()
        assert "The sandbox received it after" in text and "answered 200 accepted" in text, text
        assert "pushed by a relay standing in for Eventarc: binary-mode CloudEvents" in text, text
        [event_id] = json.loads(text.split("receive answered 202: ", 1)[1].splitlines()[0])["event_ids"]
        os.kill(run.dev.pid, signal.SIGINT)
        assert run.terminal.wait(timeout=60) == 0, run.text()
        text = run.text()
        assert "Stopped; no process left behind.\nPush relay: 1 pushed, 1 acknowledged, 0 handed back" in text, text
        assert run.leftovers() == []
        # send's log: the one message it was pushed was the seed event, delivered at its first attempt.
        lines = [json.loads(line) for line in (run.state / "logs" / "send.log").read_text().splitlines()
                 if line.startswith("{")]
        deliveries = [line for line in lines if line.get("message") == "delivery"]
        assert [(d["event_id"], d["outcome"]) for d in deliveries] == [(event_id, "delivered")], deliveries
    finally:
        run.close()


@pytest.mark.slow
@pytest.mark.emulator
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_signal_after_the_pipes_reader_died_stops_every_process(piped_run, sig):
    piped_run.wait_running()
    # Ctrl-C reaches tee too, which dies first: every write of the clean-up then fails (EPIPE).
    piped_run.kill_reader()
    piped_run.signal_group(sig)
    assert piped_run.terminal.wait(timeout=60) == 0
    assert piped_run.leftovers() == []
    assert [name for name, port in piped_run.ports.items() if not port_is_free(port)] == []
    assert not (piped_run.state / "pids.json").exists()


@pytest.mark.slow
@pytest.mark.emulator
def test_more_signals_during_the_clean_up_do_not_cut_it_short(piped_run):
    piped_run.wait_running()
    os.kill(piped_run.dev.pid, signal.SIGINT)  # tee kept alive: this test reads what was printed
    deadline = time.monotonic() + 30
    while "Stopping ..." not in piped_run.text() and time.monotonic() < deadline:
        time.sleep(0.01)
    # A second Ctrl-C, then the terminal closing, while the servers are being stopped.
    os.kill(piped_run.dev.pid, signal.SIGINT)
    os.kill(piped_run.dev.pid, signal.SIGHUP)
    assert piped_run.terminal.wait(timeout=60) == 0, piped_run.text()
    assert "Stopped; no process left behind." in piped_run.text()
    assert piped_run.leftovers() == []
    assert [name for name, port in piped_run.ports.items() if not port_is_free(port)] == []


@pytest.mark.slow
@pytest.mark.emulator
def test_ctrl_c_while_starting_stops_what_was_started(piped_run):
    # As soon as the first server is recorded: the others are being launched, the emulator's JVM
    # is starting, nothing answers yet.
    deadline = time.monotonic() + 60
    while not (piped_run.state / "pids.json").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    piped_run.signal_group(signal.SIGINT)
    assert piped_run.terminal.wait(timeout=60) == 0
    assert piped_run.leftovers() == []
    assert [name for name, port in piped_run.ports.items() if not port_is_free(port)] == []
