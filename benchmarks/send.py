"""send against the sandbox answering in 50 ms: events/s per instance and connection reuse.

Two ways, both pinned to one CPU like a 1-vCPU instance, the sandbox on the other CPU:
  - the Delivery object (benchmarks.send_driver): N threads call `Sender.handle`,
    the method the entry point calls; N = 64, and once N = 8 (the deployed concurrency.send);
  - the real `send` server (functions-framework, THREADS = N) driven by wrk with raw Pub/Sub push
    POSTs, as the emulator's push subscription and Eventarc deliver them; its memory is sampled.
The ceiling is N ÷ 50 ms. Reuse is counted on the sandbox's side (TCP connections accepted vs
requests) and, for the Delivery runs, by the client's own pool (MeasurementClient.connection_counts:
the requests HTTPAdapter's pool, sized to N as THREADS sizes it in a deployment).
The sandbox's own ceiling (wrk straight at it, pre-signed) shows it is not the limit.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time

from benchmarks.common import (
    CONSUMER_KEY,
    PRIVATE_KEY,
    PY,
    REPO,
    SERVER_CPUS,
    Context,
    MemorySampler,
    Profile,
    fmt,
    function_env,
    median,
    new_topology,
    run_wrk,
    seed_event,
    start_function,
    stop,
    taskset,
    write_lines,
)

LATENCY_MS = 50
WORKERS = 64
DEPLOYED = 8  # for comparison: a low concurrency (deployed, terraform/modules/measure/variables.tf: 64, as WORKERS)


def drive(ctx: Context, env: dict[str, str], workers: int, events: int) -> dict:
    out = ctx.workdir / "send_driver.json"
    argv = [*taskset(SERVER_CPUS), PY, "-m", "benchmarks.send_driver", "--workers", str(workers),
            "--events", str(events), "--out", str(out)]
    done = subprocess.run(argv, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"send driver failed: {done.stderr[-1500:]}")
    return json.loads(out.read_text())


def push_bodies(ctx: Context, count: int):
    from measure.events import validate
    from measure.pipeline.message import event_message

    now = int(time.time())
    lines = []
    for i, event in enumerate(validate([seed_event(1_000_000 + i, now) for i in range(count)],
                                       site_ids={"pc/steam": "2960"}, now=now)):
        data, attributes = event_message(event)
        lines.append(json.dumps({"message": {"data": base64.b64encode(data).decode(), "attributes": attributes,
                                             "messageId": str(i), "publishTime": "2026-01-01T00:00:00Z"},
                                 "subscription": "projects/measure-local/subscriptions/bench-push"}))
    return write_lines(ctx.workdir / "push.txt", lines)


def signed_serve_request(serve_url: str) -> tuple[str, dict[str, str]]:
    """One /serve POST signed as the client signs it (MeasureAuth), for wrk to replay."""
    import requests

    from measure.tune.auth import MeasureAuth

    params = {"action": "session", "advertiser_id": "877", "site_id": "2960", "sdk": "server",
              "response_format": "json", "user_id": "ceiling", "device_ip": "175.124.248.15",
              "system_date": str(int(time.time())), "transaction_id": "bench-ceiling"}
    request = MeasureAuth(CONSUMER_KEY, PRIVATE_KEY)(requests.Request("POST", serve_url, data=params).prepare())
    return request.body, {name: request.headers[name] for name in ("mat-consumer-key", "mat-signature",
                                                                    "mat-timestamp")}


def run(ctx: Context) -> None:
    topology = new_topology(ctx, "-bench-send")
    sandbox = ctx.sandbox()
    env = function_env(topology, endpoint=sandbox.serve_url)
    events = 3_200 if ctx.quick else 8_000
    seconds = 3.0 if ctx.quick else 5.0

    # The sandbox alone: how fast it answers 64 keep-alive connections at 50 ms.
    sandbox.reset(LATENCY_MS)
    body, headers = signed_serve_request(sandbox.serve_url)
    ceiling_file = write_lines(ctx.workdir / "serve.txt", [body])
    ceiling = run_wrk(sandbox.serve_url, ceiling_file, "application/x-www-form-urlencoded", connections=WORKERS,
                      seconds=seconds, headers=headers, cpus="0,1")

    driver_runs = []
    for _ in range(ctx.repeats):
        sandbox.reset(LATENCY_MS)
        result = drive(ctx, env, WORKERS, events)
        result["sandbox"] = sandbox.stats()
        driver_runs.append(result)
    sandbox.reset(LATENCY_MS)
    deployed = drive(ctx, env, DEPLOYED, 800 if ctx.quick else 1600)
    deployed["sandbox"] = sandbox.stats()

    server = start_function(ctx, "send", "send", env=env, threads=WORKERS, signature_type="cloudevent")
    pushes = push_bodies(ctx, 20_000)
    server_runs = []
    try:
        sandbox.reset(LATENCY_MS)
        run_wrk(server.url + "/", pushes, "application/json", connections=WORKERS, seconds=1)  # warm
        with MemorySampler(server.proc.pid) as memory:
            for _ in range(3 if not ctx.quick else 1):
                sandbox.reset(LATENCY_MS)
                result = run_wrk(server.url + "/", pushes, "application/json", connections=WORKERS,
                                 seconds=seconds)
                result["sandbox"] = sandbox.stats()
                server_runs.append(result)
        if ctx.profile:
            with Profile(ctx, f"send server, {WORKERS} threads", server.proc.pid, "Flask.wsgi_app"):
                run_wrk(server.url + "/", pushes, "application/json", connections=WORKERS, seconds=seconds)
    finally:
        stop(server)
    ctx.record_memory("send", memory.peak)
    ctx.record_memory("send (Delivery driver, RSS)", max(r["max_rss_mib"] for r in driver_runs))

    def reuse(stats: dict) -> float:
        return 1 - stats["connections"] / stats["received"] if stats["received"] else float("nan")

    for r in driver_runs:
        bad = {k: v for k, v in r["results"].items() if k not in ("delivered", "duplicate")}
        if bad:
            raise RuntimeError(f"send driver: not every event was delivered: {r['results']}")
    per_s = median(r["per_s"] for r in driver_runs)
    ceiling_per_s = WORKERS / (LATENCY_MS / 1000)
    reuse_sandbox = median(reuse(r["sandbox"]) for r in driver_runs)
    reuse_pool = median(1 - r["pool_connections"] / r["pool_requests"] for r in driver_runs)
    server_per_s = median(r["rps"] for r in server_runs)
    ctx.figures["send"] = {
        "events_s": per_s, "workers": WORKERS, "latency_ms": LATENCY_MS,
        "cpu_s_per_event": median(r["cpu_s"] / r["events"] for r in driver_runs),
        "server_events_s": server_per_s, "server_p50_ms": median(r["p50_ms"] for r in server_runs),
        "deployed_events_s": deployed["per_s"], "reuse": reuse_sandbox,
    }
    rows = [[f"Delivery, {WORKERS} threads (median of {len(driver_runs)})", fmt(per_s), fmt(ceiling_per_s),
             f"{per_s / ceiling_per_s:.0%}", f"{reuse_sandbox:.2%}", f"{reuse_pool:.2%}",
             fmt(median(r['cpu_s'] / r['events'] for r in driver_runs) * 1e6),
             ", ".join(fmt(r["per_s"]) for r in driver_runs)],
            [f"Delivery, {DEPLOYED} threads (for comparison)", fmt(deployed["per_s"]),
             fmt(DEPLOYED / (LATENCY_MS / 1000)), f"{deployed['per_s'] / (DEPLOYED / (LATENCY_MS / 1000)):.0%}",
             f"{reuse(deployed['sandbox']):.2%}",
             f"{1 - deployed['pool_connections'] / deployed['pool_requests']:.2%}",
             fmt(deployed["cpu_s"] / deployed["events"] * 1e6), fmt(deployed["per_s"])],
            [f"send server, THREADS={WORKERS}, wrk -c{WORKERS} raw push POSTs", fmt(server_per_s),
             fmt(ceiling_per_s), f"{server_per_s / ceiling_per_s:.0%}",
             f"{median(reuse(r['sandbox']) for r in server_runs):.2%}", "—", "—",
             ", ".join(fmt(r["rps"]) for r in server_runs)],
            [f"sandbox alone, wrk -c{WORKERS}, pre-signed", fmt(ceiling["rps"]), fmt(ceiling_per_s),
             f"{ceiling['rps'] / ceiling_per_s:.0%}", "—", "—", "—", fmt(ceiling["rps"])]]
    ctx.table(
        f"send: events/s against the sandbox answering in {LATENCY_MS} ms, instance on CPU {SERVER_CPUS}",
        ["driver", "events/s", f"ceiling N÷{LATENCY_MS} ms", "of ceiling", "reused (sandbox)", "reused (pool)",
         "CPU µs/event", "per repeat"],
        rows,
        note=f"{events} events per Delivery repeat, all delivered; reuse counts the connections the instance had "
             f"to open at its start. Server runs: p50 {fmt(median(r['p50_ms'] for r in server_runs), 1)} ms, "
             f"p99 {fmt(median(r['p99_ms'] for r in server_runs), 1)} ms, errors "
             f"{sum(r['errors'] for r in server_runs)}; peak PSS of the send server {memory.peak:.0f} MiB, "
             f"peak RSS of the Delivery driver {max(r['max_rss_mib'] for r in driver_runs):.0f} MiB.")
    ctx.row("send, events/s per instance (sandbox at 50 ms)", f"{fmt(per_s)} events/s ({WORKERS} threads)",
            f"{fmt(ceiling_per_s)} events/s ({WORKERS} ÷ 50 ms)", f"{per_s / ceiling_per_s:.2f}×",
            "≥ 1,000 events/s", per_s >= 1000,
            note=f"real send server: {fmt(server_per_s)} events/s; at concurrency "
                 f"{DEPLOYED}: {fmt(deployed['per_s'])}")
    opened = median(r["sandbox"]["connections"] for r in driver_runs)
    ctx.row("send, requests on reused connections", f"{reuse_sandbox:.2%} (sandbox), {reuse_pool:.2%} (pool)",
            target="≥ 99%", met=reuse_sandbox >= 0.99,
            note=f"{fmt(opened)} connections opened for {fmt(events)} events by {WORKERS} workers"
                 + (": one per worker, at the start" if opened <= WORKERS else ""))
