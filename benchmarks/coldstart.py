"""Cold start: a fresh process imports the entry point and serves its first request.

Baseline: `python -c 'import functions_framework'`. Each target: import functions_framework,
`create_app(target, "main.py")` (which imports main.py and measure) and the first request through
Flask's test client, for real: receive publishes to the emulator, send delivers to the sandbox,
sweep pulls the (empty) retry subscription. Wall time of the whole process, spawn to exit, pinned
to one CPU. Every round runs each process once, in a new shuffled order; a target's ratio is the
median over rounds of its wall time over the same round's baseline (as the signing row pairs Go
and Python), because this machine's speed swings within seconds. One extra `-X importtime` run per
target says which imports the time goes to.

The idiomatic peer (benchmarks/peer_function.py: google-cloud-pubsub's PublisherClient as Google's
samples use it) runs beside receive; the row compares what each adds to a bare function's cold
start, with local secrets and with the webhook tokens read from Secret Manager on the first call
(SecretManagerServiceClient replaced by a fake, 20 ms an access, as the library is imported: the
import itself stays real and where the code puts it), and a third time with the library imported
in a thread as the process starts (the option issue 23 names: off the first request's path).

Other options, not rows (docs: benchmarks/RESULTS.md, the section of this round): Secret Manager's
REST API over the AuthorizedHttp receive already has for Pub/Sub would import nothing new, so
its cold start is about the local-secrets row's plus one call; but the design card names the
client library. Cloud Run's own secret mounts (a volume of `latest`) keep the keys in Secret
Manager and import nothing, at the price of the platform's refresh instead of our TTL.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import time
from urllib.parse import urlencode

from benchmarks.common import (
    BENCH,
    PY,
    REPO,
    SERVER_CPUS,
    TOKEN,
    Context,
    fmt,
    function_env,
    median,
    new_topology,
    seed_event,
    taskset,
)

BASELINE = "import functions_framework, os; os._exit(0)"
SECRET_MANAGER_RECEIVE = "receive, tokens from Secret Manager"
SECRET_MANAGER_PEER = "peer, tokens from Secret Manager"
SECRET_MANAGER_BACKGROUND = "receive, tokens from Secret Manager, library imported in a thread at start"
SECRET_MANAGER_IDLE = "receive, tokens from Secret Manager, library imported in a thread at start, 0.3 s idle first"
SECRET_MANAGER_RUNS = (SECRET_MANAGER_RECEIVE, SECRET_MANAGER_PEER, SECRET_MANAGER_BACKGROUND, SECRET_MANAGER_IDLE)
IDLE_S = 0.3  # SECRET_MANAGER_IDLE's wait between start and the first request, taken off its figures

# argv: target, source, signature type, request (JSON: method, path, headers, body).
# BENCH_FAKE_SECRET_MANAGER=value: SecretManagerServiceClient answers every secret with `value`.
PROBE = """
import json, os, sys, time
t0 = time.perf_counter()
if os.environ.get("BENCH_FAKE_SECRET_MANAGER"):
    # The fake replaces SecretManagerServiceClient when the library is imported, wherever and
    # whenever the code imports it (the first request, or a background thread at start), so the
    # library's import stays where the code under test puts it.
    import importlib.abc, importlib.util

    class FakeSecretManager:
        def __init__(self, **kwargs):
            pass

        def access_secret_version(self, request=None, **kwargs):
            import google_crc32c
            from google.cloud import secretmanager  # imported already: this client is its class

            time.sleep(0.02)
            data = os.environ["BENCH_FAKE_SECRET_MANAGER"].encode()
            # The library's own message types, as the real client answers (measure asks proto-plus
            # whether data_crc32c is present).
            payload = secretmanager.SecretPayload(data=data, data_crc32c=google_crc32c.value(data))
            return secretmanager.AccessSecretVersionResponse(payload=payload)

    class PatchOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "google.cloud.secretmanager":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                module.SecretManagerServiceClient = FakeSecretManager

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, PatchOnImport())
import functions_framework
if os.environ.get("BENCH_BACKGROUND_IMPORT"):
    # The option of issue 23: the client library imported in a thread as the function starts,
    # off the first request's path (the request joins it when it needs the client).
    import importlib, threading
    threading.Thread(target=importlib.import_module, args=("google.cloud.secretmanager",), daemon=True).start()
t1 = time.perf_counter()
target, source, kind, request = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
app = functions_framework.create_app(target=target, source=source, signature_type=kind)
# BENCH_IDLE_BEFORE_REQUEST_S: the instance is up this long before its first request arrives
# (a request is not always waiting at start); the time is taken off every figure.
idle = float(os.environ.get("BENCH_IDLE_BEFORE_REQUEST_S") or 0)
t2 = time.perf_counter()
time.sleep(idle)
idle = time.perf_counter() - t2  # as slept
t2 += idle
response = app.test_client().open(request["path"], method="POST", headers=request["headers"],
                                  data=request["body"].encode())
t3 = time.perf_counter()
print(json.dumps({"status": response.status_code, "body": response.get_data(as_text=True)[:300],
                  "import_ff": t1 - t0, "create_app": t2 - idle - t1, "first_request": t3 - t2}), flush=True)
os._exit(0)  # the import and the first request are measured, not the interpreter's tear-down
"""


def requests_for(topology, source: str = "main.py") -> dict[str, tuple[str, str, str, dict, int]]:
    """target -> (function name, source, signature type, first request, expected status)."""
    from measure.events import validate
    from measure.pipeline.message import event_message

    now = int(time.time())
    event = validate([seed_event(1, now)], site_ids={"pc/steam": "2960"}, now=now)[0]
    data, attributes = event_message(event)
    push = {"message": {"data": base64.b64encode(data).decode(), "attributes": attributes, "messageId": "1",
                        "publishTime": "2026-01-01T00:00:00Z"},
            "subscription": f"projects/{topology.project}/subscriptions/bench"}
    ce_headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "1",
                  "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                  "ce-source": f"//pubsub.googleapis.com/projects/{topology.project}/topics/measure-events"}
    form = {"path": "/measure", "headers": {"Authorization": f"Bearer {TOKEN}",
                                            "Content-Type": "application/x-www-form-urlencoded"},
            "body": urlencode(seed_event(2, now))}
    peer = str(BENCH / "peer_function.py")
    return {
        "bare function": ("bare", str(BENCH / "bare_function.py"), "http", form, 202),
        "receive": ("receive", source, "http", form, 202),
        "peer": ("peer", peer, "http", form, 202),
        SECRET_MANAGER_RECEIVE: ("receive", source, "http", form, 202),
        SECRET_MANAGER_PEER: ("peer", peer, "http", form, 202),
        SECRET_MANAGER_BACKGROUND: ("receive", source, "http", form, 202),
        SECRET_MANAGER_IDLE: ("receive", source, "http", form, 202),
        "send": ("send", source, "cloudevent", {"path": "/", "headers": ce_headers, "body": json.dumps(push)},
                 200),
        "sweep": ("sweep", source, "http", {"path": "/", "headers": {}, "body": ""}, 200),
    }


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{argv[-4:]} failed ({done.returncode}): {done.stderr[-1500:]}")
    return wall, done.stdout


def top_imports(argv: list[str], env: dict[str, str], n: int = 6) -> str:
    """The top-level imports with the largest cumulative time in one `-X importtime` run."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env, check=False)
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if name.startswith("  "):  # depth 0 only ("| name"); each level adds two spaces
            continue
        found.append((int(cumulative), name.strip()))
    found.sort(reverse=True)
    return ", ".join(f"{name} {us / 1000:.0f}" for us, name in found[:n])


def warm_pulls(topology, seconds: float = 5.0) -> None:
    """sweep's first request pulls (empty) from the retry subscription: the emulator's pull path
    warms up like its publish path, so exercise it before measuring."""
    from measure.gcp import credentials, googleapi
    from measure.gcp.subscriber import Subscriber

    subscriber = Subscriber(googleapi.Api(f"http://{topology.emulator_host}", credentials.http(None, 2)))
    path = subscriber.subscription_path(topology.project, topology.names.retry_subscription)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        subscriber.pull(request={"subscription": path, "max_messages": 10, "return_immediately": True}, timeout=5)


def run(ctx: Context) -> None:
    topology = new_topology(ctx, "-bench-cold")
    sandbox = ctx.sandbox()
    sandbox.reset(latency_ms=0)
    env = {**os.environ, **function_env(topology, endpoint=sandbox.serve_url)}
    # As deployed and as for functions_framework itself (pip compiled it at install): bytecode
    # compiled beforehand, not recompiled from source on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "measure"), str(REPO / "main.py"),
                    str(BENCH / "bare_function.py")], check=True, cwd=REPO, env=env)
    # The first requests publish to and pull from the emulator: measure them against its steady
    # state, not against its Java front end's first, uncompiled calls (see receive.warm_emulator).
    from benchmarks.receive import warm_emulator

    warm_emulator(ctx, topology, most_s=20.0)
    warm_pulls(topology)
    targets = requests_for(topology, str(ctx.source))
    runs = 3 if ctx.quick else max(15, ctx.repeats)  # each run is short and this machine is noisy
    pin = taskset(SERVER_CPUS)
    argv_of = {"import functions_framework": [*pin, PY, "-c", BASELINE]}
    for name, (target, source, kind, request, _) in targets.items():
        argv_of[name] = [*pin, PY, "-c", PROBE, target, source, kind, json.dumps(request)]
    # The Secret Manager runs: no local tokens, the fake answers them.
    secret_env = {k: v for k, v in env.items() if k != "MEASURE_WEBHOOK_TOKENS"}
    secret_env["BENCH_FAKE_SECRET_MANAGER"] = TOKEN
    env_of = {name: secret_env if name in SECRET_MANAGER_RUNS else env for name in argv_of}
    env_of[SECRET_MANAGER_BACKGROUND] = {**secret_env, "BENCH_BACKGROUND_IMPORT": "1"}
    env_of[SECRET_MANAGER_IDLE] = {**secret_env, "BENCH_BACKGROUND_IMPORT": "1",
                                   "BENCH_IDLE_BEFORE_REQUEST_S": str(IDLE_S)}
    walls: dict[str, list[float]] = {name: [] for name in argv_of}
    parts: dict[str, list[dict]] = {name: [] for name in targets}
    for name, argv in argv_of.items():  # once each first: disk caches and .pyc files, not measured
        timed(argv, env_of[name])
    order = list(argv_of)
    shuffle = random.Random(7).shuffle  # a fixed seed: the same orders on every run of the benchmark
    for _ in range(runs):
        # A new order each round, so no process always runs at the same point of the machine's
        # swings; each target's ratio is taken against the baseline of its own round.
        shuffle(order)
        for name in order:
            wall, out = timed(argv_of[name], env_of[name])
            walls[name].append(wall - (IDLE_S if name == SECRET_MANAGER_IDLE else 0.0))
            if name in targets:
                probe = json.loads(out.strip().splitlines()[-1])
                expected = targets[name][4]
                if probe["status"] != expected:
                    raise RuntimeError(f"{name}: first request answered {probe['status']}: {probe['body']}")
                parts[name].append(probe)
    base = median(walls["import functions_framework"])
    rows = [["python -c 'import functions_framework'", fmt(base * 1000), "1.00×", "—", "—", "—",
             top_imports(argv_of["import functions_framework"][len(pin):], env)]]
    ctx.figures["coldstart"] = {"baseline_s": base}
    for name in targets:
        wall = median(walls[name])
        paired = [w / b for w, b in zip(walls[name], walls["import functions_framework"], strict=True)]
        ratio = median(paired)
        p = parts[name]
        spread = f"{min(paired):.2f}–{max(paired):.2f}"
        rows.append([name, fmt(wall * 1000), f"{ratio:.2f}× ({spread})", fmt(median(x["import_ff"] for x in p) * 1000),
                     fmt(median(x["create_app"] for x in p) * 1000), fmt(median(x["first_request"] for x in p) * 1000),
                     top_imports(argv_of[name][len(pin):], env_of[name])])
        ctx.figures["coldstart"][name] = {"wall_s": wall, "ratio": ratio, "ratios": paired,
                                          "first_request_s": median(x["first_request"] for x in p)}
        if name in ("receive", "send", "sweep"):
            ctx.row(f"cold start, {name}", f"{fmt(wall * 1000)} ms", f"{fmt(base * 1000)} ms (import ff)",
                    f"{ratio:.2f}×", "≤ 1.3×", ratio <= 1.3,
                    note=f"median of {len(paired)} paired ratios (range {spread}); create_app "
                         f"{fmt(median(x['create_app'] for x in p) * 1000)} ms, first request "
                         f"{fmt(median(x['first_request'] for x in p) * 1000)} ms")
    bare = walls["bare function"]
    for ours, theirs, secrets in (("receive", "peer", "local secrets"),
                                  (SECRET_MANAGER_RECEIVE, SECRET_MANAGER_PEER, "tokens from Secret Manager"),
                                  (SECRET_MANAGER_BACKGROUND, SECRET_MANAGER_PEER,
                                   "tokens from Secret Manager, library imported in a thread at start"),
                                  (SECRET_MANAGER_IDLE, SECRET_MANAGER_PEER,
                                   f"tokens from Secret Manager, imported in a thread, first request {IDLE_S:g} s "
                                   f"after start (the wait not counted)")):
        # What each adds to a bare function's cold start, paired within each round.
        added_ours = [o - b for o, b in zip(walls[ours], bare, strict=True)]
        added_peer = [p - b for p, b in zip(walls[theirs], bare, strict=True)]
        share = median(o / p for o, p in zip(added_ours, added_peer, strict=True) if p > 0)
        ctx.figures["coldstart"][f"added vs peer, {secrets}"] = {
            "ours_ms": 1000 * median(added_ours), "peer_ms": 1000 * median(added_peer), "ratio": share}
        ctx.row(f"cold start added to a bare function, receive vs the idiomatic peer ({secrets})",
                f"+{fmt(1000 * median(added_ours))} ms", f"peer +{fmt(1000 * median(added_peer))} ms",
                f"{share:.2f}×", "≤ 0.5× the peer's", share <= 0.5,
                note=f"median of {len(added_ours)} per-round ratios; peer: benchmarks/peer_function.py")
    ctx.table(
        f"Cold start: median wall ms of a fresh process on CPU {SERVER_CPUS}, {runs} rounds in shuffled order",
        ["process", "wall ms", "÷ import ff (median of per-round ratios, range)", "import ff ms", "create_app ms",
         "first request ms",
         "largest top-level imports (cumulative ms, one -X importtime run)"],
        rows,
        note="create_app imports main.py (and so measure and its dependencies); the first request builds what "
             "that entry point uses (Pub/Sub client, HTTP session) and does the real work.")
