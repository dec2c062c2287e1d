"""The Pub/Sub emulator as a local stand-in for Cloud Pub/Sub, and measure's topics on it.

`Emulator.start()` runs `gcloud beta emulators pubsub start` and waits until it answers;
`create_topology()` creates measure's topics and subscriptions on it (idempotently) over the same
REST stack the functions use (measure.gcp); `Topology.publish/pull` read and write with the
client library instead, as the tests' independent check.

The gcloud wrapper is a Python process that starts a Java child. Ending only the wrapper leaves
Java listening on the port, so every process here is started in a process group of its own and
stopped as a group; `stop_group` then checks that nothing of the group survived. Group members are
found with psutil and os.getpgid, which work alike on Linux and macOS (macOS has no proc filesystem).
The small process helpers live here because the emulator is their first user;
`measure.dev.devstack` and the test fixtures reuse them for the function servers and the sandbox.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

DEFAULT_PROJECT = "measure-local"
LOOPBACK = "127.0.0.1"
# A cold start of gcloud + the JVM takes about 2-3 s; a loaded CI machine can be much slower.
START_TIMEOUT = 60.0
STOP_GRACE = 5.0
# psutil's start times of one process, read twice, differ by rounding (Linux counts clock ticks).
SAME_START = 1.0


class EmulatorError(RuntimeError):
    """The emulator (or another local process) could not be started or stopped cleanly."""


class PortInUseError(EmulatorError):
    def __init__(self, port: int, what: str, hint: str = ""):
        self.port = port
        self.what = what
        message = f"port {port} ({what}) is already in use on {LOOPBACK}"
        super().__init__(f"{message}. {hint}" if hint else message)


# ---------------------------------------------------------------- process groups and ports


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on `port` now. SO_REUSEADDR as the servers themselves set it
    (gunicorn, http.server, the JVM on Linux): connections of a run that just ended linger in
    TIME_WAIT and must not make the next run think the port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    # On macOS SO_REUSEADDR lets this bind succeed beside a server listening on 0.0.0.0:port, so
    # a server that answers there takes the port too.
    return not accepts_connections(port, host)


def accepts_connections(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn(argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None,
          cwd: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start `argv` as the leader of a new process group, stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )


def group_members(pgid: int) -> list[int]:
    """Live processes of group `pgid`. Zombies are dead and do not count: once the leader is
    reaped its children are re-parented to an init that may never reap them."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue  # gone meanwhile, or not ours to look at
    return members


def started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None if there is none. With the pid it
    identifies a process for good: a pid can be reused, a (pid, start time) pair cannot."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def group_is_ours(pgid: int, leader_started: float) -> bool:
    """Whether group `pgid` is still the one whose leader started at `leader_started`. While its
    leader runs, the start times must match. A leaderless group keeps its id from being reused
    (the kernel does not hand out a pid still used as a group id), so its members are the
    leader's descendants: they count when none of them predates the leader."""
    now = started_at(pgid)
    if now is not None:
        return abs(now - leader_started) < SAME_START
    members = [started_at(pid) for pid in group_members(pgid)]
    return bool(members) and all(t is not None and t > leader_started - SAME_START for t in members)


def end_group(pgid: int, *, signals: Sequence[int] = (signal.SIGTERM,), grace: float = STOP_GRACE,
              gone: Callable[[], bool] | None = None, what: str = "process") -> None:
    """Send `signals` in turn to group `pgid`, each given `grace` seconds, then SIGKILL, until no
    process of the group is left (`gone` can add a condition, e.g. that the leader was reaped);
    raise EmulatorError if one survives SIGKILL."""

    def ended() -> bool:
        return (gone is None or gone()) and not group_members(pgid)

    for sig in (*signals, signal.SIGKILL):
        # Never signal a group that is already gone: its id may belong to someone else by now.
        if ended():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if ended():
                return
            time.sleep(0.05)
    survivors = group_members(pgid)
    if survivors:
        raise EmulatorError(f"{what}: processes {survivors} of group {pgid} survived SIGKILL")


def stop_group(proc: subprocess.Popen, *, grace: float = STOP_GRACE, what: str = "process",
               signals: Sequence[int] = (signal.SIGTERM,)) -> None:
    """Stop the whole group led by `proc` (see `end_group`) and reap `proc`. Safe to call twice."""
    end_group(proc.pid, signals=signals, grace=grace, what=what, gone=lambda: proc.poll() is not None)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


# ---------------------------------------------------------------- the emulator


class Emulator:
    """A running Pub/Sub emulator. Use `Emulator.start()`, then `stop()` or a `with` block."""

    def __init__(self, proc: subprocess.Popen, port: int, project: str, log_path: Path, data_dir: Path,
                 start_seconds: float):
        self.proc = proc
        self.port = port
        self.project = project
        self.log_path = log_path
        self.data_dir = data_dir
        self.start_seconds = start_seconds
        self._began = time.monotonic()

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this emulator through the Google client libraries."""
        return {"PUBSUB_EMULATOR_HOST": self.host, "GOOGLE_CLOUD_PROJECT": self.project}

    @classmethod
    def start(cls, port: int | None = None, project: str = DEFAULT_PROJECT, *, log_path: Path | None = None,
              timeout: float = START_TIMEOUT) -> Emulator:
        """Launch the emulator and wait until it answers; on any failure nothing is left running."""
        emulator = cls.launch(port, project, log_path=log_path)
        try:
            emulator.wait_ready(timeout)
        except BaseException:
            with contextlib.suppress(EmulatorError):
                emulator.stop()
            raise
        return emulator

    @classmethod
    def launch(cls, port: int | None = None, project: str = DEFAULT_PROJECT, *,
               log_path: Path | None = None) -> Emulator:
        """Start the emulator's process group without waiting for it (see `wait_ready`), so that
        a caller can record the group before the wait that Ctrl-C is most likely to cut short."""
        port = port or free_port()
        # Checked first because with the port taken the JVM does not exit (only its netty thread
        # dies) and the probe below would be answered by whatever holds the port.
        if not port_is_free(port):
            raise PortInUseError(port, "Pub/Sub emulator")
        # Its own data dir: gcloud writes env.yaml there, and two emulators must not share one.
        data_dir = Path(tempfile.mkdtemp(prefix="measure-pubsub-"))
        log_path = log_path or data_dir / "emulator.log"
        argv = ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={LOOPBACK}:{port}",
                f"--project={project}", f"--data-dir={data_dir}", "--quiet"]
        began = time.monotonic()
        try:
            proc = spawn(argv, log_path=log_path)
        except FileNotFoundError as e:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise EmulatorError("gcloud is not installed or not on PATH; the Pub/Sub emulator needs "
                                "`gcloud components install pubsub-emulator beta` and Java 8+ "
                                "(`make run` names the install commands for this machine)") from e
        emulator = cls(proc, port, project, log_path, data_dir, 0.0)
        emulator._began = began
        return emulator

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the emulator answers; `start_seconds` is then the time since launch."""
        deadline = self._began + timeout
        while True:
            problem = self._failure()
            if problem:
                raise EmulatorError(f"Pub/Sub emulator did not start: {problem}\n"
                                    f"--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}")
            if self._answers():
                self.start_seconds = time.monotonic() - self._began
                return
            if time.monotonic() > deadline:
                raise EmulatorError(f"Pub/Sub emulator did not answer on {self.host} within the deadline\n"
                                    f"--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}")
            time.sleep(0.1)

    def _failure(self) -> str:
        code = self.proc.poll()
        if code is not None:
            return f"gcloud exited with status {code}"
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if "BindException" in text or "Address already in use" in text:
            return f"port {self.port} is already in use"
        return ""

    def _answers(self) -> bool:
        # The emulator answers "Ok" on its root; anything else on the port is not it.
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as r:
                return r.status == 200 and r.read().strip() == b"Ok"
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        stop_group(self.proc, what="Pub/Sub emulator")
        shutil.rmtree(self.data_dir, ignore_errors=True)  # the directory too, not only its contents

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- measure's topology


@dataclasses.dataclass(frozen=True)
class Names:
    """The resource names measure uses; tests suffix them to keep their messages apart."""

    events_topic: str = "measure-events"
    retry_topic: str = "measure-retry"
    dead_letter_topic: str = "measure-dead-letter"
    retry_subscription: str = "measure-retry-sweeper"
    dead_letter_subscription: str = "measure-dead-letter-hold"
    # The emulator's own push subscription to `send`, for the tests and benches that choose it
    # (create_topology(push_endpoint=...)); it POSTs Pub/Sub push's legacy envelope, not Eventarc's
    # CloudEvent. Eventarc's stand-in (measure/dev/pushrelay.py, what `make run` uses) pulls from
    # a pull subscription of this name plus "-relay".
    events_push_subscription: str = "measure-events-push"
    # Tests only: a pull subscription on measure-events to read back what `receive` published.
    events_tap_subscription: str = "measure-events-tap"
    # Nobody consumes it: `python -m measure replay` seeks it to a time (it retains acked messages).
    events_replay_subscription: str = "measure-events-replay"

    def suffixed(self, suffix: str) -> Names:
        return Names(**{f.name: f"{getattr(self, f.name)}{suffix}" for f in dataclasses.fields(self)})

    def env(self) -> dict[str, str]:
        """The configuration variables that point measure's functions at these names."""
        return {
            "MEASURE_EVENTS_TOPIC": self.events_topic,
            "MEASURE_RETRY_TOPIC": self.retry_topic,
            "MEASURE_RETRY_SUBSCRIPTION": self.retry_subscription,
            "MEASURE_DEAD_LETTER_TOPIC": self.dead_letter_topic,
        }


PUSH_ACK_DEADLINE = 60


def publisher_client(emulator_host: str):
    """A PublisherClient bound to the emulator without touching PUBSUB_EMULATOR_HOST."""
    import grpc
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # google-cloud-pubsub has no py.typed
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(emulator_host)))


def subscriber_client(emulator_host: str):
    """A SubscriberClient bound to the emulator without touching PUBSUB_EMULATOR_HOST."""
    import grpc
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # google-cloud-pubsub has no py.typed
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(emulator_host)))


@dataclasses.dataclass
class Topology:
    """measure's topics and subscriptions on one emulator, with helpers to publish and pull."""

    project: str
    emulator_host: str
    names: Names
    push_endpoint: str | None = None
    tap: bool = False

    def topic_path(self, name: str) -> str:
        return f"projects/{self.project}/topics/{name}"

    def subscription_path(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}"

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.emulator_host, "GOOGLE_CLOUD_PROJECT": self.project,
                **self.names.env()}

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message to `topic` (a short name) and return its message id."""
        publisher = publisher_client(self.emulator_host)
        try:
            return publisher.publish(self.topic_path(topic), data, **attributes).result(timeout=30)
        finally:
            publisher.transport.close()

    def _subscriber(self):
        """The independent reader: google-cloud-pubsub's SubscriberClient (measure.gcp's Subscriber
        answers to the same calls, for a backend that speaks only REST)."""
        return subscriber_client(self.emulator_host)

    def pull(self, subscription: str, *, max_messages: int = 100, timeout: float = 5.0, expect: int = 1,
             ack: bool = True) -> list:
        """Pull until at least `expect` messages arrived or `timeout` passed; returns the
        `ReceivedMessage`s (`.message.data`, `.message.attributes`, `.message.message_id`)."""
        subscriber = self._subscriber()
        path = self.subscription_path(subscription)
        received: list = []
        deadline = time.monotonic() + timeout
        try:
            while len(received) < expect and time.monotonic() < deadline:
                # return_immediately is deprecated but is what keeps the emulator from holding
                # the call for its own long-poll period.
                response = subscriber.pull(
                    request={"subscription": path, "max_messages": max_messages, "return_immediately": True},
                    timeout=10)
                if response.received_messages:
                    received.extend(response.received_messages)
                    if ack:
                        subscriber.acknowledge(request={
                            "subscription": path,
                            "ack_ids": [m.ack_id for m in response.received_messages]})
                else:
                    time.sleep(0.1)
            return received
        finally:
            subscriber.close()


def create_topology(project: str, *, emulator_host: str, push_endpoint: str | None = None,
                    names: Names | None = None, tap: bool = False, replay: bool = False) -> Topology:
    """Create measure's topics and subscriptions on the emulator; existing ones are kept (and an
    existing push subscription is re-pointed at `push_endpoint`). `push_endpoint` makes the
    emulator push measure-events itself: Pub/Sub push's legacy envelope (functions-framework answers
    400 for a message without data before `send` runs) and about two pushes in flight. Without it,
    `PushRelay.subscribe(topology, url)` pushes as Eventarc does; use one or the other, not both.
    `replay` adds the replay subscription (make run has it; tests ask for it, since it keeps a copy
    of every message)."""
    from measure.dev import pubsub_admin as admin
    from measure.gcp import credentials, googleapi

    names = names or Names()
    topology = Topology(project, emulator_host, names, push_endpoint, tap)
    api = googleapi.Api(f"http://{emulator_host}", credentials.http(None, 2))  # the emulator takes no credentials
    try:
        for topic in (names.events_topic, names.retry_topic, names.dead_letter_topic):
            admin.create_topic(api, topology.topic_path(topic))

        def subscribe(name: str, topic: str, **extra) -> None:
            admin.create_subscription(api, topology.subscription_path(name), topology.topic_path(topic), **extra)

        from measure.functions.sweep import ACK_DEADLINE_S  # sweep's, as terraform/pubsub.tf sets it

        subscribe(names.retry_subscription, names.retry_topic, ack_deadline_seconds=int(ACK_DEADLINE_S))
        subscribe(names.dead_letter_subscription, names.dead_letter_topic)
        if push_endpoint:
            subscribe(names.events_push_subscription, names.events_topic,
                      ack_deadline_seconds=PUSH_ACK_DEADLINE, push_endpoint=push_endpoint)
        if tap:
            subscribe(names.events_tap_subscription, names.events_topic)
        if replay:
            subscribe(names.events_replay_subscription, names.events_topic, retain_acked_messages=True)
    finally:
        api.close()
    return topology
