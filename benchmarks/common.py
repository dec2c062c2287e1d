"""What every benchmark shares: the machine, medians, tables, tools, servers, load and memory.

A benchmark module exposes `run(ctx) -> None` and reports through `ctx.row(...)` (one line of the
summary: figure, ceiling measured in the same run, ratio, target, met?) and `ctx.table(...)` (its
own detail table). `__main__` prints everything and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
MAIN_PY = REPO / "main.py"
PY = sys.executable
LOOPBACK = "127.0.0.1"

# One Cloud Run instance of the deployment has 1 vCPU: the function server under test is pinned to
# CPU 0; the load generator, the emulator and the sandbox get the rest of the machine.
SERVER_CPUS = "0"
LOAD_CPUS = "1"

ADVERTISER = "877"
SITE_IDS = {"pc/steam": "2960", "ios/appstore": "2961"}
TOKEN = "bench-token-0123456789abcdefghijklmn"  # at least 32 characters (measure.config)
CONSUMER_KEY = "18d84eb30b59b5f3cc748bfe9f68b472"
PRIVATE_KEY = "bench-private-key"


class Skip(Exception):
    """A row that cannot run on this machine; the message says what is missing."""


# ---------------------------------------------------------------- the machine and the figures


def machine() -> dict[str, str]:
    model = "unknown"
    # What the model name hides under a hypervisor ("AMD EPYC", "Intel(R) Xeon(R) Processor"): the
    # family and model numbers, and whether it is a VM; receive ÷ peer moves with them (RESULTS.md).
    details: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and model == "unknown":
                model = value
            elif key in ("cpu family", "model", "bogomips") and key not in details:
                details[key] = value
            elif key == "flags" and "hypervisor" not in details:
                details["hypervisor"] = "yes" if "hypervisor" in value.split() else "no"
            elif not line.strip() and details:
                break  # the first CPU's block is enough
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "?"
    return {
        "cpu": model,
        "cpu_details": ", ".join(f"{k} {v}" for k, v in details.items()),
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # nan
        return "n/a"
    return f"{value:,.{digits}f}"


@dataclasses.dataclass
class Row:
    what: str
    figure: str
    ceiling: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    note: str = ""


@dataclasses.dataclass
class Table:
    title: str
    header: Sequence[str]
    rows: list[Sequence[object]]
    note: str = ""


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Context:
    """State of one `python -m benchmarks` run, shared by the benchmarks it runs."""

    def __init__(self, *, repeats: int, quick: bool, workdir: Path, profile: bool = False):
        self.repeats = repeats
        self.quick = quick
        self.profile = profile
        self.source = MAIN_PY
        self.workdir = workdir
        self.rows: list[Row] = []
        self.tables: list[Table] = []
        self.figures: dict[str, object] = {}  # machine-readable, for docs/cost.md's arithmetic
        self.peak_memory: dict[str, float] = {}  # function -> peak PSS MiB under the rows' load
        self._emulator = None
        self._sandbox = None
        self._cleanups: list = []

    def row(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        mark = {True: "meets", False: "MISSES", None: ""}[row.met]
        print(f"  -> {row.what}: {row.figure}  (ceiling {row.ceiling}, ratio {row.ratio}, "
              f"target {row.target}) {mark}", flush=True)
        return row

    def table(self, title: str, header: Sequence[str], rows: list[Sequence[object]], note: str = "") -> None:
        self.tables.append(Table(title, header, rows, note))
        print(f"\n{title}\n{markdown_table(header, rows)}" + (f"\n{note}" if note else "") + "\n", flush=True)

    def record_memory(self, function: str, mib: float) -> None:
        self.peak_memory[function] = max(self.peak_memory.get(function, 0.0), mib)

    # -- shared services, started on first use and stopped at the end of the run

    def emulator(self):
        if self._emulator is None:
            from measure.dev.emulator import Emulator

            print("starting the Pub/Sub emulator ...", flush=True)
            with pinned_children(LOAD_CPUS):
                self._emulator = Emulator.start(log_path=self.workdir / "emulator.log")
            self._cleanups.append(self._emulator.stop)
            print(f"  emulator up in {self._emulator.start_seconds:.1f} s on {self._emulator.host}", flush=True)
        return self._emulator

    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = Sandbox.start(self)
        return self._sandbox

    def on_exit(self, action) -> None:
        self._cleanups.append(action)

    def close(self) -> None:
        while self._cleanups:
            action = self._cleanups.pop()
            try:
                action()
            except Exception as exc:  # one failed clean-up must not keep the others from running
                print(f"clean-up failed: {exc}", file=sys.stderr, flush=True)


class Sandbox:
    """benchmarks.sandbox_server (measure.dev.sandbox counting connections) in its own process group."""

    def __init__(self, service):
        self.service = service
        self.url = service.url
        self.serve_url = service.url + "/serve"

    @classmethod
    def start(cls, ctx: Context) -> Sandbox:
        from measure.dev.devstack import start_service
        from measure.dev.emulator import free_port

        port = free_port()
        argv = [*taskset(LOAD_CPUS), PY, "-m", "benchmarks.sandbox_server", "--port", str(port),
                "--consumer-key", CONSUMER_KEY, "--private-key", PRIVATE_KEY]
        service = start_service("sandbox", argv, port=port, log_path=ctx.workdir / "sandbox.log",
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ctx.on_exit(service.stop)
        service.wait_ready(time.monotonic() + 30)
        return cls(service)

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        import urllib.request

        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def stats(self) -> dict:
        stats = self._call("GET", "/_sandbox/stats")
        stats["connections"] -= 1  # this query's own connection
        return stats

    def reset(self, latency_ms: float = 0.0) -> None:
        self._call("POST", "/_sandbox/faults", {"latency_ms": latency_ms})
        self._call("POST", "/_sandbox/reset", {})

    def pgid(self) -> int:
        return self.service.proc.pid


@contextlib.contextmanager
def pinned_children(cpus: str):
    """Children started inside inherit this CPU affinity (the JVM of the emulator, say)."""
    before = os.sched_getaffinity(0)
    wanted = {int(c) for c in cpus.split(",")} & set(range(os.cpu_count() or 1))
    if wanted and len(before) > 1:
        os.sched_setaffinity(0, wanted)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def taskset(cpus: str) -> list[str]:
    """A command prefix pinning to `cpus`, when there is more than one CPU to choose from."""
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", cpus]


# ---------------------------------------------------------------- tools from Debian's packages

_apt_updated = False


def ensure_command(command: str, package: str) -> str:
    """The path of `command`, installing Debian's `package` first when it is missing."""
    global _apt_updated
    found = shutil.which(command)
    if found:
        return found
    if not shutil.which("apt-get"):
        raise Skip(f"{command} is missing and there is no apt-get to install {package}")
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        raise Skip(f"{command} is missing; install Debian's {package} (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing Debian's {package} for {command} ...", flush=True)
    if not _apt_updated:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        _apt_updated = True
    done = subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                          env=env, check=False, capture_output=True, text=True)
    found = shutil.which(command)
    if not found:
        raise Skip(f"could not install {package}: {done.stderr.strip()[-300:]}")
    return found


def tools_python(*packages: str) -> str:
    """The python of .tools/bench, a venv of benchmark tooling kept apart from the project's pins."""
    venv = REPO / ".tools" / "bench"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    missing = [p for p in packages if subprocess.run(
        [str(python), "-m", "pip", "show", "--quiet", p.split("==")[0]], capture_output=True, check=False).returncode]
    if missing:
        print(f"installing {', '.join(missing)} into {venv} ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *missing],
                       check=True)
    return str(python)


# ---------------------------------------------------------------- the functions' environment


def function_env(topology=None, endpoint: str = "http://127.0.0.1:9/serve", **extra: str) -> dict[str, str]:
    env = {
        "MEASURE_ADVERTISER_ID": ADVERTISER,
        "MEASURE_SITE_IDS": json.dumps(SITE_IDS),
        "MEASURE_ENDPOINT": endpoint,
        "MEASURE_CONSUMER_KEY": CONSUMER_KEY,
        "MEASURE_PRIVATE_KEY": PRIVATE_KEY,
        "MEASURE_WEBHOOK_TOKENS": TOKEN,
    }
    if topology is not None:
        env.update(topology.env())
    env.update(extra)
    return env


def seed_event(i: int, now: int | None = None) -> dict[str, str]:
    """The TRACKS guide's game_open call, made distinct by its user id and (global) IP address."""
    return {
        "user_id": f"bench-user-{i:08d}",
        "event_name": "game_open",
        "ip": f"175.{124 + (i >> 16) % 100}.{(i >> 8) & 255}.{(i & 255) or 1}",
        "time_stamp": str(now or int(time.time())),
        "platform": "pc",
        "storefront": "steam",
    }


def new_topology(ctx: Context, suffix: str, **kwargs):
    from measure.dev.emulator import Names, create_topology

    emulator = ctx.emulator()
    return create_topology(emulator.project, emulator_host=emulator.host, names=Names().suffixed(suffix), **kwargs)


# ---------------------------------------------------------------- function servers


def start_function(ctx: Context, name: str, target: str, *, env: Mapping[str, str], threads: int | None,
                   source: Path | None = None, signature_type: str = "http", cpus: str = SERVER_CPUS):
    """functions-framework as Cloud Run runs it (gunicorn, WORKERS/THREADS from the environment),
    pinned to `cpus`; returns a running, listening `measure.dev.devstack.Service`. `threads` None:
    THREADS unset, functions-framework's default (4 a CPU os.cpu_count() reports)."""
    from measure.dev.devstack import functions_framework_bin, start_service
    from measure.dev.emulator import free_port

    port = free_port()
    source = source or ctx.source
    argv = [*taskset(cpus), functions_framework_bin(), "--target", target, "--source", str(source),
            "--signature-type", signature_type, "--host", LOOPBACK, "--port", str(port)]
    full_env = {**os.environ, **env, "WORKERS": "1", "PYTHONUNBUFFERED": "1"}
    full_env.pop("THREADS", None)
    if threads is not None:
        full_env["THREADS"] = str(threads)
    service = start_service(name, argv, port=port, log_path=ctx.workdir / f"{name}.log", env=full_env)
    ctx.on_exit(service.stop)
    service.wait_ready(time.monotonic() + 60)
    return service


def stop(service) -> None:
    with contextlib.suppress(Exception):
        service.stop()


# ---------------------------------------------------------------- memory


def group_pss_mib(pgid: int) -> float:
    """Proportional set size of a process group (shared pages counted once), in MiB."""
    from measure.dev.emulator import group_members

    total_kib = 0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
                    break
    return total_kib / 1024


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a group."""
    return sum(group_cpu_split_s(pgid))


def group_cpu_split_s(pgid: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by the live processes of a group."""
    from measure.dev.emulator import group_members

    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime, stime: fields 14 and 15 of stat
            system += int(fields[12])
    return user / tick, system / tick


def group_hwm_mib(pgid: int) -> float:
    """The largest peak RSS (VmHWM) of any one process of the group, in MiB."""
    from measure.dev.emulator import group_members

    peak = 0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


class MemorySampler:
    """Samples a process group's PSS every `interval` seconds while in use; `.peak` in MiB."""

    def __init__(self, pgid: int, interval: float = 0.1):
        self.pgid = pgid
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.peak = max(self.peak, group_pss_mib(self.pgid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, group_pss_mib(self.pgid))


# ---------------------------------------------------------------- profiles (--profile)


class Profile:
    """py-spy (from .tools/bench) on a server's worker while in use, when the run has --profile.

    Samples only while the worker holds the GIL (--gil), so the shares are of the CPU time spent
    in Python; the summary keeps the stacks that pass through `root` and names the frames with the
    largest inclusive share."""

    def __init__(self, ctx: Context | None, name: str, pgid: int, root: str, categories=None):
        self.ctx, self.name, self.pgid, self.root = ctx, name, pgid, root
        self.categories = categories  # benchmarks.profiles categories: a breakdown table too
        self.cpu_ms_per_request: float | None = None  # set by the caller, for µs a request
        self.out = ctx.workdir / f"profile-{name}.txt" if ctx else Path("/dev/null")
        self.proc = None

    def __enter__(self) -> Profile:
        if self.ctx is None or not self.ctx.profile:
            return self
        from measure.dev.emulator import group_members

        spy = str(Path(tools_python("py-spy")).parent / "py-spy")
        def parent(pid: int) -> int:
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
            return 0

        # gunicorn's worker is the master's child; the master itself only supervises.
        pid = next((p for p in group_members(self.pgid) if parent(p) == self.pgid), self.pgid)
        self.proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", "300", "--rate", "250",
                                      "--gil", "--format", "raw", "--output", str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.out.exists():
            self.ctx.table(f"Profile of {self.name}: share of Python CPU samples (py-spy --gil) under load",
                           ["share", "frame (inclusive)"], summarise_stacks(self.out, self.root))
            if self.categories:
                from benchmarks.profiles import breakdown, table_rows

                counts, total = breakdown(self.out, self.categories)
                self.breakdown = counts, total
                cpu = self.cpu_ms_per_request
                self.ctx.table(
                    f"Profile of {self.name}, by piece of work (py-spy --gil, every thread of the worker)",
                    ["piece", "share of samples", "µs a request", "samples"], table_rows(counts, total, cpu),
                    note=f"{total} samples at 250 Hz. µs a request = share × the server's CPU a request in the "
                         f"profiled run ({cpu:.2f} ms); C work done without the GIL (socket I/O, the kernel) is in "
                         f"that CPU but in no share, so the µs are an upper bound for the Python pieces."
                    if cpu is not None else f"{total} samples at 250 Hz.")


def summarise_stacks(path: Path, root: str, top: int = 25) -> list[list[str]]:
    """Inclusive share per frame (file-level, not line) of the stacks that pass through `root`."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or root not in stack:
            continue
        frames = stack.split(";")
        total += int(n)
        seen = set()
        for frame in frames[next(i for i, f in enumerate(frames) if root in f):]:
            key = frame.split(":")[0] + ")" if ":" in frame else frame  # file, not line
            if key not in seen:
                seen.add(key)
                counts[key] = counts.get(key, 0) + int(n)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [[f"{n / total:.0%}", f"`{frame}`"] for frame, n in ranked] if total else [["—", "no samples"]]


# ---------------------------------------------------------------- wrk


WRK_LUA = BENCH / "wrk" / "post.lua"


def run_wrk(url: str, bodies: Path, content_type: str, *, connections: int, seconds: float,
            headers: Mapping[str, str] | None = None, cpus: str = LOAD_CPUS) -> dict:
    """POST the lines of `bodies` in turn over `connections` keep-alive connections for `seconds`.

    Returns requests/s, latency percentiles (ms), error counts and the CPU seconds wrk itself used,
    so a reader can tell that the load generator was not the limit."""
    wrk = ensure_command("wrk", "wrk")
    header_args = []
    for name, value in {"Content-Type": content_type, **(headers or {})}.items():
        header_args += ["-H", f"{name}: {value}"]
    argv = [*taskset(cpus), wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
            *header_args, "-s", str(WRK_LUA), url, "--", str(bodies)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]} {done.stdout[-500:]}")
    result = json.loads(line.removeprefix("WRKJSON "))
    duration = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / duration
    for key in ("p50", "p90", "p99", "mean", "max"):
        result[f"{key}_ms"] = result[f"{key}_us"] / 1000
    result["errors"] = sum(result[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors",
                                                "timeouts"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["wrk_cpu_share"] = cpu / duration  # of one core
    return result


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    with open(path, "w") as f:
        for line in lines:
            if "\n" in line:
                raise ValueError("a wrk body must fit on one line")
            f.write(line + "\n")
    return path


# ---------------------------------------------------------------- small process helpers


def run_python(code: str, *, env: Mapping[str, str] | None = None, cpus: str | None = None,
               timeout: float = 120, args: Sequence[str] = ()) -> tuple[float, str]:
    """Run `python -c code` in a fresh process; (wall seconds, stdout). Raises on failure."""
    argv = [*(taskset(cpus) if cpus else []), PY, "-c", code, *args]
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})}, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"python -c failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return wall, done.stdout


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)
