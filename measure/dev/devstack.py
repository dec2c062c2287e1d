"""The whole pipeline on one machine: what `make run` (`python -m measure dev`) starts.

    Pub/Sub emulator  + measure's topics and subscriptions
    push relay        the local stand-in for the Eventarc trigger (measure/dev/pushrelay.py, a thread
                        of this process): pulls measure-events and POSTs each message to send as
                        Eventarc does, a binary-mode CloudEvent, many at once. Not the emulator's
                        own push subscription: that POSTs Pub/Sub push's legacy envelope, which
                        functions-framework answers 400 for a message without data before send
                        runs, and keeps about two pushes in flight.
    sandbox           stand-in for the Measurement API (skipped when MEASURE_ENDPOINT,
                        MEASURE_CONSUMER_KEY and MEASURE_PRIVATE_KEY point at the real one)
    receive, send, sweep   real functions-framework servers on main.py
    a timer           POSTs sweep every few seconds, standing in for Cloud Scheduler

Every process is the leader of its own process group and is stopped as a group, so Ctrl-C (or
`DevStack.stop()`) leaves nothing behind; the groups (and when each leader started) are also
written to `.run/pids.json` so a run that was killed outright is cleaned up by the next one.
Nothing here reads the proc filesystem (macOS has none): psutil finds the processes, on Linux
and macOS alike. Each component logs to `.run/logs/<name>.log`.

Stopping is the part that must never be skipped. SIGINT (Ctrl-C), SIGTERM and SIGHUP (the
terminal closed) all mean "stop"; once stopping has begun further signals are ignored; and all
terminal output goes through `say`, which never raises: with `make run | tee run.log` the pipe's
reader dies first on Ctrl-C and every later write fails (EPIPE), which must not cut the clean-up
short.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from measure.dev.emulator import (
    DEFAULT_PROJECT,
    LOOPBACK,
    Emulator,
    EmulatorError,
    Names,
    PortInUseError,
    Topology,
    accepts_connections,
    create_topology,
    end_group,
    group_is_ours,
    log_tail,
    port_is_free,
    spawn,
    started_at,
    stop_group,
)
from measure.dev.pushrelay import PushRelay

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIN_PY = REPO_ROOT / "main.py"
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_GRACE = 3.0
# The push relay's wait after a pull that found nothing: at the relay's default (50 ms) an idle
# stack keeps the emulator's JVM at about a fifth of a core; at this, about 5 %, and an event published
# into an idle stack waits at most this long for its push (a busy one none: its pulls find messages).
RELAY_IDLE_WAIT = 0.5

# component -> default port; each can be changed by --<name>-port or MEASURE_DEV_<NAME>_PORT.
DEFAULT_PORTS = {"receive": 8080, "send": 8081, "sweep": 8082, "sandbox": 8090, "emulator": 8085}
# The three Cloud Functions: target -> signature type, as main.py defines them.
FUNCTIONS = {"receive": "http", "send": "cloudevent", "sweep": "http"}
REAL_API_VARS = ("MEASURE_ENDPOINT", "MEASURE_CONSUMER_KEY", "MEASURE_PRIVATE_KEY")

# The TRACKS guide's example call (seeds/000_c2251416daf29bb4.txt), less its time_stamp.
SEED_EVENT = {
    "user_id": "1a23fd44c21f8l5r",
    "event_name": "game_open",
    "ip": "175.124.248.15",
    "platform": "pc",
    "storefront": "steam",
}
SEED_TIME_STAMP = "1724094783"


class DevStackError(RuntimeError):
    """The local stack could not be started; the message says which part and why."""


# ---------------------------------------------------------------- output and stop signals


def say(text: str = "", *, err: bool = False) -> None:
    """Print a line to the terminal, or to nowhere once the terminal is gone. A pipe whose reader
    died (EPIPE) or a closed terminal (EIO) make every later write fail too; the stream's file
    descriptor is then pointed at /dev/null, so neither later lines nor the interpreter's final
    flush raise again. The stack's own logs are files and are not affected."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except OSError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP all mean "stop the stack". The first one raises
    KeyboardInterrupt in the main thread, unless it arrives inside `deferred()` (the start of a
    process and its recording, which must not be split) and then at the end of it. After
    `cleaning_up()` nothing raises any more: a second Ctrl-C during the clean-up is ignored."""

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self._depth = 0
        self._pending = False
        self._final = False
        self._previous: dict[int, Any] = {}  # signal.signal's handlers

    def install(self) -> None:
        self.received, self._pending, self._final = None, False, False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}

    def uninstall(self) -> None:
        """The handlers from before `install` (main() may run inside a test process)."""
        for sig, handler in self._previous.items():
            if handler is not None:  # None: set outside Python, which cannot be put back
                signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None or self._final:
            return
        self.received = signum
        if self._depth:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending and not self._final:
            self._pending = False
            raise KeyboardInterrupt

    def cleaning_up(self) -> None:
        self._final = True


# One per process: handlers belong to the process, and `python -m measure dev` installs them.
STOP = StopSignals()


def port_env_var(name: str) -> str:
    return f"MEASURE_DEV_{name.upper()}_PORT"


def port_hint(name: str) -> str:
    return (f"Stop whatever uses it, or choose another port with --{name}-port N "
            f"(or {port_env_var(name)}=N make run).")


# ---------------------------------------------------------------- one server process


@dataclasses.dataclass
class Service:
    """A local server: a process group that listens on `port` and logs to `log_path`."""

    name: str
    proc: subprocess.Popen
    port: int
    log_path: Path
    argv: list[str]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def wait_ready(self, deadline: float) -> None:
        while True:
            code = self.proc.poll()
            if code is not None:
                raise DevStackError(f"{self.name} exited with status {code} before listening on port {self.port}\n"
                                    f"--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}")
            if accepts_connections(self.port):
                return
            if time.monotonic() > deadline:
                raise DevStackError(f"{self.name} did not listen on port {self.port} in time\n"
                                    f"--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}")
            time.sleep(0.05)

    def stop(self) -> None:
        # SIGINT: gunicorn takes it as "quit now" (0.5 s) while SIGTERM makes it wait for idle
        # keep-alive connections (2.5 s). A worker stuck in a request (a sweep mid-pull) ignores
        # both, and these servers keep no state worth waiting for: SIGKILL after a short grace.
        stop_group(self.proc, what=self.name, signals=(signal.SIGINT,), grace=SERVER_STOP_GRACE)


def start_service(name: str, argv: Sequence[str], *, port: int, log_path: Path, env: Mapping[str, str] | None = None,
                  hint: str = "") -> Service:
    """Start a server in its own process group; does not wait for it (see `Service.wait_ready`)."""
    if not port_is_free(port):
        raise PortInUseError(port, name, hint)
    proc = spawn(argv, log_path=log_path, env=env, cwd=REPO_ROOT)
    return Service(name, proc, port, log_path, list(argv))


def functions_framework_bin() -> str:
    beside = Path(sys.executable).parent / "functions-framework"
    found = str(beside) if beside.exists() else shutil.which("functions-framework")
    if not found:
        raise DevStackError("functions-framework is not installed: run `make run` (it bootstraps .venv) "
                            "or pip install -r requirements.txt")
    return found


def function_server(target: str, *, port: int, env: Mapping[str, str], log_path: Path,
                    signature_type: str | None = None, source: Path = MAIN_PY, hint: str = "") -> Service:
    """Start `functions-framework --target T --source main.py` as Cloud Functions would run it."""
    if not source.exists():
        raise DevStackError(f"{source} does not exist: the function servers need main.py with "
                            f"receive, send and sweep")
    signature_type = signature_type or FUNCTIONS.get(target, "http")
    argv = [functions_framework_bin(), "--target", target, "--source", str(source),
            "--signature-type", signature_type, "--host", LOOPBACK, "--port", str(port)]
    # Unbuffered so a crash leaves its last lines in the log; the parent's PATH etc. pass through.
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    return start_service(target, argv, port=port, log_path=log_path, env=full_env, hint=hint)


# ---------------------------------------------------------------- configuration


@dataclasses.dataclass
class DevConfig:
    ports: dict[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_PORTS))
    state_dir: Path = dataclasses.field(default_factory=lambda: Path.cwd() / ".run")
    project: str = DEFAULT_PROJECT
    advertiser_id: str = "877"
    site_ids: dict[str, str] = dataclasses.field(default_factory=lambda: {"pc/steam": "2960"})
    # Real Measurement API when all three are set; otherwise the sandbox with generated keys.
    endpoint: str | None = None
    consumer_key: str | None = None
    private_key: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)
    sweep_every: float = 30.0
    names: Names = dataclasses.field(default_factory=Names)
    source: Path = MAIN_PY

    @property
    def real_api(self) -> bool:
        return self.endpoint is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> DevConfig:
        """Defaults, then the environment, then `overrides` (what flags asked for)."""
        config = cls()
        for name in DEFAULT_PORTS:
            raw = environ.get(port_env_var(name))
            if raw:
                config.ports[name] = parse_port(raw, port_env_var(name))
        config.advertiser_id = environ.get("MEASURE_ADVERTISER_ID") or config.advertiser_id
        if environ.get("MEASURE_SITE_IDS"):
            try:
                config.site_ids = json.loads(environ["MEASURE_SITE_IDS"])
            except ValueError as e:
                raise DevStackError(f"MEASURE_SITE_IDS is not JSON: {e}") from e
        given = [v for v in REAL_API_VARS if environ.get(v)]
        if given and len(given) < len(REAL_API_VARS):
            missing = ", ".join(v for v in REAL_API_VARS if v not in given)
            raise DevStackError(f"{', '.join(given)} set but {missing} not: set all three to deliver to the "
                                f"real Measurement API, or none to use the local sandbox")
        if given:
            config.endpoint = environ["MEASURE_ENDPOINT"]
            config.consumer_key = environ["MEASURE_CONSUMER_KEY"]
            config.private_key = environ["MEASURE_PRIVATE_KEY"]
        tokens = [t.strip() for t in environ.get("MEASURE_WEBHOOK_TOKENS", "").splitlines() if t.strip()]
        config.token = tokens[0] if tokens else None
        if environ.get("MEASURE_DEV_SWEEP_EVERY"):
            config.sweep_every = parse_seconds(environ["MEASURE_DEV_SWEEP_EVERY"], "MEASURE_DEV_SWEEP_EVERY")
        for key, value in overrides.items():
            if key.endswith("_port"):
                if value is not None:
                    config.ports[key.removesuffix("_port")] = value  # type: ignore[assignment]  # an int
            elif value is not None:
                setattr(config, key, value)
        return config


def parse_seconds(raw: str, source: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise DevStackError(f"{source}: {raw!r} is not a positive number of seconds")
    return seconds


def parse_port(raw: str, source: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise DevStackError(f"{source}: {raw!r} is not a port number (1-65535)")
    return port


# ---------------------------------------------------------------- the stack


class DevStack:
    """Start with `DevStack(config).start()` or `with DevStack(config) as stack:`. Attributes:
    `webhook_url`, `receive_url`, `send_url`, `sweep_url`, `sandbox_url` (None with the real
    API), `endpoint`, `token`, `emulator_host`, `project`, `topology`, `logs` (name -> Path),
    `relay` (the running PushRelay that pushes send) and, once stopped, `relay_figures`."""

    def __init__(self, config: DevConfig | None = None):
        self.config = config or DevConfig()
        c = self.config
        self.state_dir = Path(c.state_dir)
        self.log_dir = self.state_dir / "logs"
        self.pids_file = self.state_dir / "pids.json"
        self.project = c.project
        self.emulator_host = f"{LOOPBACK}:{c.ports['emulator']}"
        self.token = c.token or secrets.token_urlsafe(24)
        self.consumer_key = c.consumer_key or secrets.token_hex(16)
        self.private_key = c.private_key or secrets.token_hex(16)
        base = {name: f"http://{LOOPBACK}:{port}" for name, port in c.ports.items()}
        self.receive_url = base["receive"]
        self.webhook_url = base["receive"] + "/measure"
        self.send_url = base["send"]
        self.sweep_url = base["sweep"]
        self.sandbox_url = None if c.real_api else base["sandbox"]
        self.sandbox_page_url = None if c.real_api else base["sandbox"] + "/_sandbox"
        self.endpoint = c.endpoint or f"{base['sandbox']}/serve"
        self.logs = {name: self.log_dir / f"{name}.log"
                     for name in ("emulator", *(() if c.real_api else ("sandbox",)), *FUNCTIONS, "scheduler", "relay")}
        self.emulator: Emulator | None = None
        self.topology: Topology | None = None
        self.relay: PushRelay | None = None
        # What the relay counted when it stopped (its figures()), for the run's last lines.
        self.relay_figures: dict[str, Any] | None = None
        self.services: dict[str, Service] = {}
        self._scheduler: threading.Thread | None = None
        self._stopping = threading.Event()
        self.start_seconds = 0.0

    # -- environment handed to the function servers (the contract with main.py)

    def function_env(self) -> dict[str, str]:
        c = self.config
        return {
            "MEASURE_ADVERTISER_ID": c.advertiser_id,
            "MEASURE_SITE_IDS": json.dumps(c.site_ids),
            "MEASURE_ENDPOINT": self.endpoint,
            "MEASURE_CONSUMER_KEY": self.consumer_key,
            "MEASURE_PRIVATE_KEY": self.private_key,
            "MEASURE_WEBHOOK_TOKENS": self.token,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": self.emulator_host,
            **c.names.env(),
        }

    # -- start and stop

    def start(self) -> DevStack:
        began = time.monotonic()
        try:
            self._prepare_state_dir()
            self._check_ports()
            # Everything is launched at once and awaited after: the JVM's start-up (~2.5 s)
            # dominates, and the servers need only the emulator's address, not the emulator.
            if not self.config.real_api:
                self._start(lambda: start_service(
                    "sandbox",
                    [sys.executable, "-m", "measure", "sandbox", "--host", LOOPBACK,
                     "--port", str(self.config.ports["sandbox"]), "--advertiser-id", self.config.advertiser_id],
                    port=self.config.ports["sandbox"], log_path=self.logs["sandbox"],
                    # The key pair by environment, not flags: flags show in `ps`.
                    env={**os.environ, "PYTHONUNBUFFERED": "1", "MEASURE_CONSUMER_KEY": self.consumer_key,
                         "MEASURE_PRIVATE_KEY": self.private_key},
                    hint=port_hint("sandbox")))
            env = self.function_env()
            for target in FUNCTIONS:
                self._start(lambda target=target: function_server(  # type: ignore[misc]  # a bound default
                    target, port=self.config.ports[target], env=env, log_path=self.logs[target],
                    source=self.config.source, hint=port_hint(target)))
            with STOP.deferred():
                try:
                    self.emulator = Emulator.launch(self.config.ports["emulator"], self.project,
                                                    log_path=self.logs["emulator"])
                except PortInUseError as e:
                    raise PortInUseError(e.port, "Pub/Sub emulator", port_hint("emulator")) from e
                self._record_pids()
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            for service in self.services.values():
                service.wait_ready(deadline)
            self.emulator.wait_ready()
            self.topology = create_topology(self.project, emulator_host=self.emulator_host,
                                            names=self.config.names, replay=True)
            self._start_relay(self.topology)
            self._scheduler = threading.Thread(target=self._schedule_sweeps, name="sweep-scheduler", daemon=True)
            self._scheduler.start()
        except BaseException:
            # The start-up error is the one to show; a clean-up failure would only hide it.
            with contextlib.suppress(DevStackError):
                self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every process this stack started, each as a whole group; raise if one survives.
        A stop signal arriving meanwhile waits until the stop is done."""
        with STOP.deferred():
            self._stop()

    def _stop(self) -> None:
        self._stopping.set()
        if self._scheduler:
            self._scheduler.join(timeout=5)
        # In parallel: each group is independent, and Ctrl-C should not wait for the sum. The relay
        # stops beside send (whose end cuts its pushes in flight short, so it is not waited for) but
        # before the emulator, which it tells what it pushed and what it hands back.
        stoppers: list[Callable[[], None]] = [s.stop for s in self.services.values()]
        problems = []
        with ThreadPoolExecutor(max_workers=len(stoppers) + 1) as pool:
            relay_stopped = pool.submit(self._stop_relay)
            futures = [relay_stopped, *(pool.submit(stop) for stop in stoppers)]
            if self.emulator:
                def stop_emulator(emulator: Emulator = self.emulator) -> None:
                    relay_stopped.exception()  # waits for the relay, whatever its outcome
                    emulator.stop()

                futures.append(pool.submit(stop_emulator))
            for future in futures:
                try:
                    future.result()
                except (EmulatorError, DevStackError) as e:
                    problems.append(str(e))
        self.services.clear()
        self.emulator = None
        if problems:
            raise DevStackError("; ".join(problems))
        with contextlib.suppress(OSError):
            self.pids_file.unlink()

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def process_groups(self) -> list[int]:
        groups = [s.proc.pid for s in self.services.values()]
        return groups + ([self.emulator.proc.pid] if self.emulator else [])

    def _start_relay(self, topology: Topology) -> None:
        # Its subscription is created first: a call to the emulator, which a Ctrl-C may cut short.
        # The relay's threads are started and recorded with stop signals held back, like a
        # process: a relay thread that `stop` does not know of would keep pulling until this exits.
        relay = PushRelay.subscribe(topology, self.send_url + "/", idle_wait=RELAY_IDLE_WAIT)
        with STOP.deferred():
            self.relay = relay.start()
        self.logs["relay"].write_text(
            f"pulling {relay.subscription}, pushing each message to {relay.endpoint} as Eventarc does "
            f"(a binary-mode CloudEvent), up to {relay.outstanding} at once; its figures at the stop:\n")

    def _stop_relay(self) -> None:
        """Stop the relay's threads (pull loop and pushes) and record its figures."""
        relay, self.relay = self.relay, None
        if relay is None:
            return
        try:
            relay.stop()
        except Exception as e:  # its own check that the pull loop ended, or a failed close
            raise DevStackError(f"push relay did not stop cleanly: {e!r}") from e
        finally:
            self.relay_figures = relay.figures()
            with contextlib.suppress(OSError), open(self.logs["relay"], "a") as log:
                log.write(json.dumps(self.relay_figures) + "\n")

    def _start(self, launch: Callable[[], Service]) -> None:
        # Launched and recorded with stop signals held back: a Ctrl-C in between would leave a
        # process that neither this run nor the next one knows of.
        with STOP.deferred():
            service = launch()
            self.services[service.name] = service
            self._record_pids()

    def _prepare_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftovers()
        # A clean slate per run: old logs would mislead, and nothing else here outlives a run.
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True)

    def _record_pids(self) -> None:
        procs = {name: (s.proc, s.argv) for name, s in self.services.items()}
        if self.emulator:
            procs["emulator"] = (self.emulator.proc, list(self.emulator.proc.args))  # type: ignore[arg-type]  # argv list
        groups = {name: {"pgid": proc.pid, "started": started_at(proc.pid), "argv": [str(a) for a in argv]}
                  for name, (proc, argv) in procs.items()}
        self.pids_file.write_text(json.dumps(groups, indent=2))

    def _stop_leftovers(self) -> None:
        """Stop the groups an earlier run recorded and never stopped (it was killed outright).
        A group counts as ours only while it is the one recorded (`group_is_ours`: the leader's
        start time), so a pid the system has since given to another program is never signalled."""
        try:
            recorded = json.loads(self.pids_file.read_text())
        except (OSError, ValueError):
            return
        for name, entry in recorded.items():
            pgid, started = entry.get("pgid"), entry.get("started")
            if not isinstance(pgid, int) or not isinstance(started, int | float) or not group_is_ours(pgid, started):
                continue
            say(f"stopping {name} (process group {pgid}) left over from an earlier run")
            try:
                end_group(pgid, what=f"{name} left over from an earlier run")
            except EmulatorError as e:
                raise DevStackError(str(e)) from e
        self.pids_file.unlink()

    def _check_ports(self) -> None:
        """Every port up front, so a busy one fails before anything was started."""
        taken: dict[int, str] = {}
        for name, port in self.config.ports.items():
            if name == "sandbox" and self.config.real_api:
                continue
            if port in taken:
                raise DevStackError(f"{taken[port]} and {name} are both given port {port}. {port_hint(name)}")
            taken[port] = name
            if not port_is_free(port):
                what = "Pub/Sub emulator" if name == "emulator" else name
                raise PortInUseError(port, what, port_hint(name))

    # -- the local Cloud Scheduler

    def _schedule_sweeps(self) -> None:
        import requests

        with open(self.logs["scheduler"], "a", buffering=1) as log:
            log.write(f"POST {self.sweep_url}/ every {self.config.sweep_every:g} s\n")
            while not self._stopping.wait(self.config.sweep_every):
                stamp = time.strftime("%H:%M:%S")
                try:
                    r = requests.post(self.sweep_url + "/", timeout=max(self.config.sweep_every, 60))
                    log.write(f"{stamp} {r.status_code} {r.text.strip()[:2000]}\n")
                    if r.status_code >= 400:
                        say(f"[scheduler] sweep answered {r.status_code}; see {self.logs['sweep']}")
                except requests.RequestException as e:
                    if self._stopping.is_set():
                        return
                    log.write(f"{stamp} error {e}\n")
                    say(f"[scheduler] sweep failed: {e}")

    # -- driving it

    def post_event(self, fields: Mapping[str, str] | None = None, *, time_stamp: int | None = None):
        """POST one form-encoded event to the webhook, as the seed's telemetry server does."""
        import requests

        payload = {**SEED_EVENT, "time_stamp": str(time_stamp or int(time.time())), **(fields or {})}
        return requests.post(self.webhook_url, data=payload, headers={"Authorization": f"Bearer {self.token}"},
                             timeout=30)

    def sandbox_requests(self, transaction_id: str) -> list[dict]:
        import requests

        if not self.sandbox_url:
            raise DevStackError("there is no sandbox: this stack delivers to the real Measurement API")
        r = requests.get(f"{self.sandbox_url}/_sandbox/requests", params={"transaction_id": transaction_id},
                         timeout=10)
        r.raise_for_status()
        return r.json()

    def wait_delivered(self, transaction_id: str, timeout: float = 30.0) -> list[dict]:
        """Wait until the sandbox recorded a request for `transaction_id`; returns its records."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.sandbox_requests(transaction_id)
            if seen:
                return seen
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"the sandbox saw no request with transaction_id={transaction_id} within {timeout:g} s\n"
                    + "\n".join(f"--- {self.logs[n]} (tail) ---\n{log_tail(self.logs[n], 15)}"
                                for n in ("receive", "send", "emulator")))
            time.sleep(0.2)

    def curl_command(self, event_name: str = "game_open") -> str:
        fields = {**SEED_EVENT, "event_name": event_name}
        parts = [f"curl -sS -X POST {self.webhook_url}",
                 f"-H {shlex.quote('Authorization: Bearer ' + self.token)}"]
        parts += [f"-d {shlex.quote(f'{k}={v}')}" for k, v in fields.items()]
        parts.append('-d "time_stamp=$(date +%s)"')
        return " \\\n  ".join(parts)

    def summary(self) -> str:
        lines = [
            f"webhook        POST {self.webhook_url}  (also POST {self.receive_url}/)",
            f"token          {self.token}",
            "debug          (what an event would become; nothing is published or sent)\n"
            + self.curl_command().replace(self.webhook_url, self.webhook_url + "/debug", 1),
        ]
        if self.sandbox_url:
            lines += [f"sandbox        {self.sandbox_page_url}  (what the Measurement API stand-in received)",
                      f"               {self.sandbox_url}/_sandbox/requests?transaction_id=<event id>"]
        else:
            lines += [f"Measurement API {self.endpoint}  (real: no sandbox)"]
        lines += [
            f"send           {self.send_url}/  (pushed by a relay standing in for Eventarc: binary-mode CloudEvents"
            + (f" from {self.relay.subscription}, up to {self.relay.outstanding} in flight)" if self.relay else ")"),
            f"sweep          POST {self.sweep_url}/  (every {self.config.sweep_every:g} s)",
            f"Pub/Sub        {self.emulator_host}  project {self.project}",
            "logs           " + "\n               ".join(str(p) for p in self.logs.values()),
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------- `python -m measure dev`


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m measure dev",
        description="Run receive, send, sweep, the Pub/Sub emulator and the Measurement API sandbox locally, "
                    "post the seed's game_open event and show it arrive. Ctrl-C stops everything.")
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=None, metavar="N",
                            help=f"default {port}, or {port_env_var(name)}")
    parser.add_argument("--state-dir", type=Path, default=None, help="default ./.run (logs go to STATE_DIR/logs)")
    parser.add_argument("--sweep-every", type=float, default=None, metavar="SECONDS",
                        help="how often to POST sweep, standing in for Cloud Scheduler (default 30, "
                             "or MEASURE_DEV_SWEEP_EVERY)")
    parser.add_argument("--no-seed", action="store_true", help="do not post the seed's example event")
    return parser.parse_args(argv)


def run_seed_event(stack: DevStack) -> bool:
    now = int(time.time())
    say(f"\nPosting the seed's game_open event to {stack.webhook_url} (form-encoded, Bearer token).")
    say(f"  time_stamp={now} (now): the seed's {SEED_TIME_STAMP} (2024-08-19) is older than the webhook accepts.")
    response = stack.post_event(time_stamp=now)
    say(f"receive answered {response.status_code}: {response.text.strip()}")
    if response.status_code != 202:
        say(f"!! the event was not accepted; see {stack.logs['receive']}")
        return False
    event_ids = response.json().get("event_ids") or []
    if not stack.sandbox_url:
        say(f"Delivered to the real Measurement API by send; see {stack.logs['send']}.")
        return True
    for event_id in event_ids:
        say(f"Waiting for the sandbox to receive transaction_id={event_id} ...")
        began = time.monotonic()
        try:
            seen = stack.wait_delivered(event_id)
        except DevStackError as e:
            say(f"!! {e}")
            return False
        say(f"The sandbox received it after {time.monotonic() - began:.1f} s:")
        for record in seen:
            say(f"  {record.get('method')} {record.get('uri')}  signature {record.get('signature')}  "
                f"answered {record.get('status')} {record.get('outcome')}  log_id={record.get('log_id')}")
            params = record.get("params") or {}
            say("  params: " + " ".join(f"{k}={v}" for k, v in sorted(params.items())))
        say(f"  (full record: {stack.sandbox_url}/_sandbox/requests?transaction_id={event_id})")
        say(f"  (its whole timeline: python -m measure status {event_id} --logs {stack.log_dir})")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = DevConfig.from_env(
            os.environ, state_dir=args.state_dir, sweep_every=args.sweep_every,
            **{f"{name}_port": getattr(args, f"{name}_port") for name in DEFAULT_PORTS})
        stack = DevStack(config)
    except DevStackError as e:
        say(f"measure dev: {e}", err=True)
        return 2
    # Ctrl-C reaches only this process (the servers have sessions of their own), and so do
    # SIGTERM and the SIGHUP of a closed terminal: each ends up in the clean-up below.
    STOP.install()
    status = 0
    try:
        parts = "the Pub/Sub emulator, " + ("" if config.real_api else "the sandbox, ") + "receive, send and sweep"
        say(f"Starting {parts} ...")
        stack.start()
        assert stack.emulator is not None  # start() launched it
        say(f"Up in {stack.start_seconds:.1f} s (Pub/Sub emulator {stack.emulator.start_seconds:.1f} s).")
        if config.real_api:
            say(f"MEASURE_ENDPOINT etc. are set: delivering to {stack.endpoint}, not to the sandbox.")
        if not args.no_seed:
            run_seed_event(stack)
        say()
        say(stack.summary())
        say("\nPost another event:")
        say(stack.curl_command())
        say("\nRunning; Ctrl-C stops everything.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except (DevStackError, EmulatorError) as e:
        say(f"measure dev: {e}", err=True)
        status = 1
    finally:
        # Whatever ended the run (a signal, a failed start, an error), this part always runs to
        # the end: later signals are ignored and `say` cannot raise.
        STOP.cleaning_up()
        say("\nStopping ...")
        try:
            stack.stop()
        except DevStackError as e:
            say(f"measure dev: {e}", err=True)
            status = 1
        else:
            say("Stopped; no process left behind.")
        if stack.relay_figures is not None:
            figures = stack.relay_figures
            say(f"Push relay: {figures['pulled']} pushed, {figures['acked']} acknowledged, "
                f"{figures['released']} handed back for redelivery" + "".join(
                    f"; {name} {value}" for name in ("failed pushes", "errors") if (value := figures[name])))
        STOP.uninstall()
    return status


if __name__ == "__main__":
    sys.exit(main())
