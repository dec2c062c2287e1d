"""receive under load: one event per request against a bare function and the idiomatic peer
(benchmarks/peer_function.py: google-cloud-pubsub's PublisherClient, `publish(...).result()`, as
Google's samples write it), and batches of 500.

All servers are functions-framework as Cloud Run runs it (gunicorn, WORKERS=1, THREADS=16: the
deployed concurrency of receive), pinned to one CPU like a 1-vCPU instance; wrk runs on the other
CPU with the Pub/Sub emulator. Repeats alternate bare, peer and receive, so the ratios are side by side.
The publish path alone (measure.gcp.publisher.Publisher against the emulator, pinned the same way) is
measured too: it says how much of receive's figure the emulator leaves room for.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
from urllib.parse import urlencode

from benchmarks.common import (
    BENCH,
    PY,
    SERVER_CPUS,
    TOKEN,
    Context,
    MemorySampler,
    Profile,
    fmt,
    function_env,
    group_cpu_split_s,
    median,
    new_topology,
    run_wrk,
    seed_event,
    start_function,
    stop,
    taskset,
    write_lines,
)
from benchmarks.profiles import RECEIVE as RECEIVE_PIECES
from measure import runtime

THREADS = 16  # terraform/modules/measure/variables.tf: concurrency.receive
BATCH = 500
# A batch keeps the one CPU busy for a while: 4 in flight saturate it, and each finishes well
# inside a repeat (16 would make every request wait for 15 others and few would finish in time).
BATCH_CONNECTIONS = 4
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def publish_ceiling(ctx: Context, topology, batch: int, seconds: float, mode: str = "client") -> dict:
    argv = [*taskset(SERVER_CPUS), PY, "-m", "benchmarks.publish_probe", "--topic", topology.names.events_topic,
            "--batch", str(batch), "--threads", str(THREADS), "--seconds", str(seconds), "--mode", mode]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=BENCH.parent,
                          env={**os.environ, **topology.env()})
    if done.returncode != 0:
        raise RuntimeError(f"publish probe failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm_emulator(ctx: Context, topology, most_s: float = 40.0) -> list[float]:
    """Publish through the emulator until its rate settles: the emulator is a Java server whose
    REST front end gets several times faster over its first half-minute of traffic (JIT), and
    the rows should measure receive, not a cold stand-in. Returns the rates seen (messages/s)."""
    rates: list[float] = []
    began = time.monotonic()
    while time.monotonic() - began < (10.0 if ctx.quick else most_s):
        rates.append(publish_ceiling(ctx, topology, 1, 3.0)["per_s"])
        if len(rates) >= 3 and rates[-1] < 1.1 * min(rates[-3:-1]):
            break  # no longer getting faster
    return rates


def with_cpu(server, run_load) -> dict:
    """Run a load and add the server's own CPU seconds per request to its result (and the share of
    it spent in the kernel: threads blocking and waking, sockets)."""
    user_before, system_before = group_cpu_split_s(server.proc.pid)
    result = run_load()
    user_after, system_after = group_cpu_split_s(server.proc.pid)
    used = (user_after - user_before) + (system_after - system_before)
    result["server_cpu_ms_per_request"] = 1000 * used / max(result["requests"], 1)
    result["server_system_share"] = (system_after - system_before) / used if used > 0 else 0.0
    return result


def run(ctx: Context) -> None:
    seconds = 2.0 if ctx.quick else 3.0
    batch_seconds = 4.0 if ctx.quick else 6.0
    topology = new_topology(ctx, "-bench-receive")
    env = function_env(topology)
    now = int(time.time())
    single = write_lines(ctx.workdir / "single.txt", (urlencode(seed_event(i, now)) for i in range(20_000)))
    batches = write_lines(ctx.workdir / "batches.txt",
                          (json.dumps([seed_event(b * BATCH + j, now) for j in range(BATCH)], separators=(",", ":"))
                           for b in range(16)))
    form, as_json = "application/x-www-form-urlencoded", "application/json"

    bare = start_function(ctx, "bare", "bare", env=env, threads=THREADS, source=BENCH / "bare_function.py")
    # The peer imports measure's validation: the repository on its path, as main.py has it beside it.
    peer = start_function(ctx, "peer", "peer", env={**env, "PYTHONPATH": str(BENCH.parent)}, threads=THREADS,
                          source=BENCH / "peer_function.py")
    ours = start_function(ctx, "receive", "receive", env=env, threads=THREADS)
    # The same two with functions-framework's default THREADS (4 a CPU os.cpu_count() reports).
    peer_default = start_function(ctx, "peer-default", "peer", env={**env, "PYTHONPATH": str(BENCH.parent)},
                                  threads=None, source=BENCH / "peer_function.py")
    ours_default = start_function(ctx, "receive-default", "receive", env=env, threads=None)
    try:
        warm_up = warm_emulator(ctx, topology)
        for server, bodies, kind in ((bare, single, form), (peer, single, form), (ours, single, form),
                                     (ours, batches, as_json), (peer_default, single, form),
                                     (ours_default, single, form)):
            run_wrk(server.url + "/measure", bodies, kind, connections=4, seconds=2, headers=AUTH)  # warm
        runs: dict[str, list[dict]] = {"bare": [], "peer": [], "ours": [], "bare_batch": [], "ours_batch": [],
                                       "peer_default": [], "ours_default": []}
        with MemorySampler(ours.proc.pid) as memory:
            for _ in range(ctx.repeats):
                runs["bare"].append(with_cpu(bare, lambda: run_wrk(bare.url + "/measure", single, form,
                                                                   connections=THREADS, seconds=seconds, headers=AUTH)))
                runs["peer"].append(with_cpu(peer, lambda: run_wrk(peer.url + "/measure", single, form,
                                                                   connections=THREADS, seconds=seconds, headers=AUTH)))
                runs["ours"].append(with_cpu(ours, lambda: run_wrk(ours.url + "/measure", single, form,
                                                                   connections=THREADS, seconds=seconds, headers=AUTH)))
                for kind, server in (("peer_default", peer_default), ("ours_default", ours_default)):
                    runs[kind].append(with_cpu(server, functools.partial(
                        run_wrk, server.url + "/measure", single, form, connections=THREADS, seconds=seconds,
                        headers=AUTH)))
                runs["bare_batch"].append(run_wrk(bare.url + "/measure", batches, as_json,
                                                  connections=BATCH_CONNECTIONS, seconds=seconds, headers=AUTH))
                runs["ours_batch"].append(with_cpu(ours, lambda: run_wrk(
                    ours.url + "/measure", batches, as_json, connections=BATCH_CONNECTIONS, seconds=batch_seconds,
                    headers=AUTH)))
        if ctx.profile:  # extra runs, not counted: py-spy costs the server a little
            profile_s = 4 * seconds  # enough samples for the breakdown's smaller pieces
            for name, server, bodies, kind, connections in (
                    ("bare function, one event a request", bare, single, form, THREADS),
                    ("receive, one event a request", ours, single, form, THREADS),
                    (f"receive, batches of {BATCH}", ours, batches, as_json, BATCH_CONNECTIONS)):
                with Profile(ctx, name, server.proc.pid, "Flask.wsgi_app", categories=RECEIVE_PIECES) as profile:
                    profiled = with_cpu(server, functools.partial(
                        run_wrk, server.url + "/measure", bodies, kind, connections=connections, seconds=profile_s,
                        headers=AUTH))
                    profile.cpu_ms_per_request = profiled["server_cpu_ms_per_request"]
        default_threads = runtime.default_threads()
    finally:
        for server in (ours_default, peer_default, ours, peer, bare):
            stop(server)
    ctx.record_memory("receive", memory.peak)
    probes = 1 if ctx.quick else 3
    ceiling_single = [publish_ceiling(ctx, topology, 1, 2.0) for _ in range(probes)]
    ceiling_batch = [publish_ceiling(ctx, topology, BATCH, 2.0) for _ in range(probes)]
    ceiling_direct = [publish_ceiling(ctx, topology, BATCH, 2.0, "direct") for _ in range(probes)]
    ceiling_peer = [publish_ceiling(ctx, topology, 1, 2.0, "peer") for _ in range(probes)]

    errors = {k: sum(r["errors"] for r in v) for k, v in runs.items()}
    if any(count for kind, count in errors.items() if not kind.startswith("bare")):
        raise RuntimeError(f"receive answered errors under load: {errors}; see {ctx.workdir}/receive.log")

    def m(kind: str, key: str) -> float:
        return median(r[key] for r in runs[kind])

    rps_bare, rps_ours, rps_peer = m("bare", "rps"), m("ours", "rps"), m("peer", "rps")
    ratio = rps_ours / max(rps_bare, 1e-9)

    def paired(ours_kind: str, peer_kind: str) -> list[float]:
        """receive ÷ peer in each repeat: the two ran one after the other, on the same machine state."""
        return [o["rps"] / max(p["rps"], 1e-9) for o, p in zip(runs[ours_kind], runs[peer_kind], strict=True)]

    peer_ratios, default_ratios = paired("ours", "peer"), paired("ours_default", "peer_default")
    peer_ratio, default_ratio = median(peer_ratios), median(default_ratios)
    cpu_bare, cpu_ours = m("bare", "server_cpu_ms_per_request"), m("ours", "server_cpu_ms_per_request")
    cpu_peer = m("peer", "server_cpu_ms_per_request")
    # Server CPU per batch x batches per second: how busy the one CPU was (1.0 = saturated).
    batch_cpu_share = m("ours_batch", "server_cpu_ms_per_request") * m("ours_batch", "rps") / 1000
    events_s = m("ours_batch", "rps") * BATCH
    pub1, pub500 = median(c["per_s"] for c in ceiling_single), median(c["per_s"] for c in ceiling_batch)
    direct500 = median(c["per_s"] for c in ceiling_direct)
    peer1 = median(c["per_s"] for c in ceiling_peer)
    ctx.figures["receive"] = {
        "single_rps": rps_ours, "single_p50_ms": m("ours", "p50_ms"), "single_p99_ms": m("ours", "p99_ms"),
        "bare_rps": rps_bare, "peer_rps": rps_peer, "peer_server_cpu_ms_per_request": cpu_peer,
        "batch_events_s": events_s, "threads": THREADS,
        # CPU-seconds per event on the 1-CPU instance, when the server is CPU-bound.
        "cpu_s_per_event_single": 1 / max(rps_ours, 1e-9), "cpu_s_per_event_batch": 1 / max(events_s, 1e-9),
        "publish_ceiling_single": pub1, "publish_ceiling_batch": pub500, "publish_ceiling_direct": direct500,
        "publish_ceiling_peer_single": peer1,
        "server_cpu_ms_per_request_single": cpu_ours, "bare_server_cpu_ms_per_request": cpu_bare,
        "server_system_share_single": m("ours", "server_system_share"),
        "emulator_warm_up": warm_up, "batch_server_cpu_share": batch_cpu_share,
        "peak_pss_mib": memory.peak, "peer_ratio_paired": peer_ratio,
        "default_threads": default_threads, "default_rps": m("ours_default", "rps"),
        "peer_default_rps": m("peer_default", "rps"), "default_peer_ratio_paired": default_ratio,
    }

    def line(name, kind, per=1):
        rs = runs[kind]
        return [name, fmt(m(kind, "rps")), fmt(m(kind, "rps") * per), fmt(m(kind, "p50_ms"), 1),
                fmt(m(kind, "p99_ms"), 1), f"{median(r['wrk_cpu_share'] for r in rs):.0%}",
                ", ".join(fmt(r["rps"]) for r in rs)]

    ctx.table(
        f"receive: wrk -t1 -c{THREADS}, {seconds:g} s a repeat; servers WORKERS=1 THREADS={THREADS} "
        f"on CPU {SERVER_CPUS}",
        ["server, body", "requests/s", "events/s", "p50 ms", "p99 ms", "wrk CPU", "requests/s per repeat"],
        [line("bare function, one form event", "bare"),
         line("peer (pubsub_v1.PublisherClient, publish().result()), one form event", "peer"),
         line("receive, one form event", "ours"),
         line(f"peer, functions-framework's default THREADS ({default_threads}), one form event", "peer_default"),
         line(f"receive, functions-framework's default THREADS ({default_threads}), one form event", "ours_default"),
         line(f"bare function, JSON batch of {BATCH} (-c{BATCH_CONNECTIONS})", "bare_batch", BATCH),
         line(f"receive, JSON batch of {BATCH} (-c{BATCH_CONNECTIONS}, {batch_seconds:g} s)", "ours_batch", BATCH),
         ["publish only (Publisher → emulator), 1 message a call, 16 callers", "—", fmt(pub1), "—", "—", "—",
          ", ".join(fmt(c["per_s"]) for c in ceiling_single)],
         ["publish only (peer: PublisherClient, publish().result()), 1 message a call, 16 callers", "—",
          fmt(peer1), "—", "—", "—", ", ".join(fmt(c["per_s"]) for c in ceiling_peer)],
         [f"publish only, {BATCH} messages a call, 16 callers", "—", fmt(pub500), "—", "—", "—",
          ", ".join(fmt(c["per_s"]) for c in ceiling_batch)],
         [f"emulator: one Publish RPC of {BATCH} raw messages a call, 16 callers", "—", fmt(direct500), "—", "—",
          "—", ", ".join(fmt(c["per_s"]) for c in ceiling_direct)]],
        note=f"Errors (non-2xx, socket): {errors}. wrk CPU is the share of one core wrk itself used: far below "
             f"100% means the load generator was not the limit. Peak PSS of the receive server (master + "
             f"worker): {memory.peak:.0f} MiB. The publish-only rows run measure.gcp.publisher.Publisher pinned to the "
             f"server's CPU: the most the Python client plus the emulator let one CPU publish; the last row skips the "
             f"client's per-message machinery (one RPC a batch): about the emulator's own ceiling. Before the rows, "
             f"the emulator was warmed until its publish rate settled: "
             f"{', '.join(fmt(r) for r in warm_up)} msg/s. Server CPU per one-event request (the server's "
             f"process group, user + system): bare {cpu_bare:.2f} ms, peer {cpu_peer:.2f} ms, "
             f"receive {cpu_ours:.2f} ms (in the kernel: bare {m('bare', 'server_system_share'):.0%}, peer "
             f"{m('peer', 'server_system_share'):.0%}, receive {m('ours', 'server_system_share'):.0%}), so a receive "
             f"instance bound by its CPU alone would serve {cpu_bare / max(cpu_ours, 1e-9):.2f}× the bare "
             f"function's requests.")
    ctx.row("receive, one event per request", f"{fmt(rps_ours)} req/s, p50 {fmt(m('ours', 'p50_ms'), 1)} ms, "
            f"p99 {fmt(m('ours', 'p99_ms'), 1)} ms",
            f"bare {fmt(rps_bare)} req/s, p50 {fmt(m('bare', 'p50_ms'), 1)} ms, p99 {fmt(m('bare', 'p99_ms'), 1)} ms",
            f"{ratio:.2f}×", "≥ 0.6×", ratio >= 0.6,
            note=f"publish-only ceiling {fmt(pub1)} msg/s; server CPU a request {cpu_ours:.2f} ms vs bare "
                 f"{cpu_bare:.2f} ms ({cpu_bare / max(cpu_ours, 1e-9):.2f}×)")
    ctx.row("receive vs the idiomatic peer, one event per request", f"{fmt(rps_ours)} req/s",
            f"peer {fmt(rps_peer)} req/s, p50 {fmt(m('peer', 'p50_ms'), 1)} ms, p99 {fmt(m('peer', 'p99_ms'), 1)} ms",
            f"{peer_ratio:.2f}×", "≥ 1.5× the peer", peer_ratio >= 1.5,
            note=f"median of per-repeat ratios ({', '.join(f'{r:.2f}' for r in peer_ratios)}); peer: "
                 f"benchmarks/peer_function.py (google-cloud-pubsub as Google's samples use it); server CPU "
                 f"a request: receive {cpu_ours:.2f} ms, peer {cpu_peer:.2f} ms")
    ctx.row(f"receive vs the idiomatic peer, functions-framework's default THREADS ({default_threads})",
            f"{fmt(m('ours_default', 'rps'))} req/s", f"peer {fmt(m('peer_default', 'rps'))} req/s",
            f"{default_ratio:.2f}×", "≥ 1.5× the peer", default_ratio >= 1.5,
            note=f"median of per-repeat ratios ({', '.join(f'{r:.2f}' for r in default_ratios)}); wrk -c{THREADS}; "
                 f"server CPU a request: receive {m('ours_default', 'server_cpu_ms_per_request'):.2f} ms, peer "
                 f"{m('peer_default', 'server_cpu_ms_per_request'):.2f} ms")
    ctx.row(f"receive, batches of {BATCH}", f"{fmt(events_s)} events/s",
            f"publish-only {fmt(pub500)} msg/s (client), {fmt(direct500)} msg/s (one RPC a batch)",
            f"{events_s / max(pub500, 1e-9):.2f}× of publish-only", "≥ 20,000 events/s", events_s >= 20_000,
            note=f"server CPU {batch_cpu_share:.0%} busy; "
                 f"{1e6 * m('ours_batch', 'server_cpu_ms_per_request') / 1000 / BATCH:.0f} µs of CPU an event")
