"""receive against the peer as the emulator's latency changes: why their ratio moves with the machine.

    python -m benchmarks --only latency           the row
    python -m benchmarks.latency --to HOST:PORT   the forwarder alone (a delay a line on stdin, in ms)

Both servers reach the emulator through one TCP forwarder (`Forwarder`, below) that holds every
chunk, in each direction, for a set delay before passing it on, in order. Both Pub/Sub stacks go
through it alike: receive's REST calls (HTTP/1.1) and the peer's gRPC (HTTP/2) share the emulator's
port. The delay changes between repeats (a line on the forwarder's stdin) while the servers keep
running, and every repeat runs receive and the peer back to back, so each delay has paired ratios.

What it shows (benchmarks/RESULTS.md has the reading): receive makes one Publish call a topic at a
time and every caller that arrives meanwhile rides the next one (a group commit), so the longer a
call takes, the more requests share it and the less CPU each pays for requests/urllib3; the peer's
client makes a call per batch of its own (10 ms or 100 messages) on gRPC's threads, whose cost a
message hardly changes with latency. A machine whose emulator answers slower (a slower CPU for
its JVM, or a busier machine) gives receive bigger groups; a fast one small groups.
The forwarder also counts receive's Publish calls (HTTP requests seen towards the emulator), so
the table says how many messages a call carried at each delay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

from benchmarks.common import (
    BENCH,
    LOAD_CPUS,
    LOOPBACK,
    PY,
    SERVER_CPUS,
    TOKEN,
    Context,
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

THREADS = 16  # receive's concurrency, as in benchmarks/receive.py
DELAYS_MS = (0.0, 2.0, 10.0)  # each way: 0, 4 and 20 ms added to a round trip
MAX_REPEATS = 3  # every repeat runs each delay with two servers and three probes: about 45 s
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FORM = "application/x-www-form-urlencoded"


class Forwarder:
    """A TCP forwarder that delays every chunk by `delay` seconds each way (asyncio, one thread).

    `calls` counts HTTP/1.1 requests seen towards the target ("POST " at a chunk's start after a
    whole answer): the Publish calls of a REST client. gRPC's frames are forwarded, not counted."""

    def __init__(self, target: tuple[str, int], delay: float = 0.0):
        self.target = target
        self.delay = delay
        self.calls = 0
        self.bytes_up = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(1 << 16):
                if upstream:
                    self.calls += data.count(b"POST /v1/")
                    self.bytes_up += len(data)
                queue.put_nowait((loop.time() + self.delay, data))
        except ConnectionError:
            pass
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(ConnectionError):
            await sender
        writer.close()

    async def _serve_one(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pipe(client_reader, server_writer, True),
                             self._pipe(server_reader, client_writer, False))

    async def serve(self, port: int, ready: threading.Event | None = None) -> None:
        server = await asyncio.start_server(self._serve_one, LOOPBACK, port)
        if ready is not None:
            ready.set()
        async with server:
            await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """The forwarder as a process: prints its port, then reads "DELAY_MS" lines on stdin and
    answers each with a JSON line of the calls and bytes it forwarded towards the target so far."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency")
    parser.add_argument("--to", required=True, help="HOST:PORT of the target (the emulator)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    forwarder = Forwarder((host, int(port)))
    if not args.port:
        from measure.dev.emulator import free_port

        args.port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    threading.Thread(target=lambda: loop.run_until_complete(forwarder.serve(args.port, ready)), daemon=True).start()
    if not ready.wait(10):
        return 1
    print(json.dumps({"port": args.port}), flush=True)
    for line in sys.stdin:
        if line.strip():
            forwarder.delay = float(line) / 1000
        print(json.dumps({"calls": forwarder.calls, "bytes_up": forwarder.bytes_up}), flush=True)
    return 0


class _Control:
    """The forwarder process, pinned with the emulator and wrk (the load's CPU)."""

    def __init__(self, target: str):
        self.proc = subprocess.Popen([*taskset(LOAD_CPUS), PY, "-m", "benchmarks.latency", "--to", target],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=BENCH.parent)
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def ask(self, delay_ms: float | str = "") -> dict:
        self.proc.stdin.write(f"{delay_ms}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()


def _probes() -> dict[str, list[str]]:
    from measure.gcp.publisher import MAX_CALLS_IN_FLIGHT

    def label(calls: int) -> str:
        return f"Publisher, {calls} call{'s' if calls > 1 else ''} in flight" + \
            (" (deployed)" if calls == MAX_CALLS_IN_FLIGHT else "")

    return {label(1): ["--calls-in-flight", "1"], label(2): ["--calls-in-flight", "2"],
            "peer's PublisherClient": ["--mode", "peer"]}


PROBES = _probes()


def probe(topology, port: int, extra: list[str], seconds: float) -> dict:
    """benchmarks.publish_probe on the server's CPU, through the forwarder at `port`."""
    argv = [*taskset(SERVER_CPUS), PY, "-m", "benchmarks.publish_probe", "--topic", topology.names.events_topic,
            "--batch", "1", "--threads", str(THREADS), "--seconds", str(seconds), *extra]
    env = {**os.environ, **topology.env(), "PUBSUB_EMULATOR_HOST": f"{LOOPBACK}:{port}"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=BENCH.parent, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"publish probe failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe_table(ctx: Context, probes: dict[float, dict[str, list[dict]]], seconds: float) -> None:
    rows = []
    for delay, by_name in probes.items():
        for name, results in by_name.items():
            per_call = f"{median(r['per_call'] for r in results):.1f}" if "peer" not in name else "— (gRPC)"
            rows.append([f"+{2 * delay:g} ms", name, fmt(median(r["per_s"] for r in results)),
                         f"{median(r['cpu_ms_per_message'] for r in results):.2f}", per_call,
                         ", ".join(fmt(r["per_s"]) for r in results)])
        ctx.figures.setdefault("latency_probe", {})[f"{delay:g}"] = {
            name: {"per_s": median(r["per_s"] for r in results),
                   "cpu_ms_per_message": median(r["cpu_ms_per_message"] for r in results),
                   "per_call": median(r["per_call"] for r in results)} for name, results in by_name.items()}
    ctx.table(f"The publish path alone by the emulator's latency: {THREADS} callers, 1 message each, {seconds:g} s, "
              f"on the server's CPU, through the forwarder",
              ["added to a round trip", "publisher", "messages/s", "CPU ms a message", "messages a Publish call",
               "messages/s per repeat"], rows,
              note="benchmarks/publish_probe.py. With one call in flight, the callers answered by a call come back "
                   "while the next call is already out, so they wait a whole call before theirs: two cohorts of "
                   "about half the callers alternate, and a latency-bound instance publishes about "
                   f"{THREADS // 2} messages a round trip. With two in flight a returning cohort starts its own call "
                   "at once.")


def run(ctx: Context) -> None:
    from benchmarks.receive import warm_emulator, with_cpu

    seconds = 2.0 if ctx.quick else 3.0
    topology = new_topology(ctx, "-bench-latency")
    forwarder = _Control(topology.env()["PUBSUB_EMULATOR_HOST"])
    ctx.on_exit(forwarder.close)
    env = {**function_env(topology), "PUBSUB_EMULATOR_HOST": f"{LOOPBACK}:{forwarder.port}"}
    now = int(time.time())
    single = write_lines(ctx.workdir / "latency-single.txt", (urlencode(seed_event(i, now)) for i in range(20_000)))
    peer = start_function(ctx, "peer-latency", "peer", env={**env, "PYTHONPATH": str(BENCH.parent)},
                          threads=THREADS, source=BENCH / "peer_function.py")
    ours = start_function(ctx, "receive-latency", "receive", env=env, threads=THREADS)
    load = functools.partial(run_wrk, bodies=single, content_type=FORM, connections=THREADS, seconds=seconds,
                             headers=AUTH)
    by_delay: dict[float, dict[str, list]] = {}
    try:
        warm_emulator(ctx, topology)
        for server in (peer, ours):
            load(server.url + "/measure", seconds=2)
        for _ in range(min(ctx.repeats, MAX_REPEATS)):
            for delay in DELAYS_MS:
                forwarder.ask(delay)
                seen = by_delay.setdefault(delay, {"ours": [], "peer": [], "per_call": []})
                seen["peer"].append(with_cpu(peer, lambda: load(peer.url + "/measure")))
                before = forwarder.ask()["calls"]
                result = with_cpu(ours, lambda: load(ours.url + "/measure"))
                calls = forwarder.ask()["calls"] - before
                seen["ours"].append(result)
                seen["per_call"].append(result["requests"] / max(calls, 1))
        # The publish path alone, through the same forwarder: receive's Publisher with one call a
        # topic in flight (as deployed) and with two, and the peer's client; 16 callers, 1 message each.
        probes: dict[float, dict[str, list[dict]]] = {}
        for _ in range(min(ctx.repeats, MAX_REPEATS)):
            for delay in DELAYS_MS:
                forwarder.ask(delay)
                seen_probe = probes.setdefault(delay, {})
                for name, extra in PROBES.items():
                    before = forwarder.ask()["calls"]
                    result = probe(topology, forwarder.port, extra, seconds)
                    result["per_call"] = result["messages"] / max(forwarder.ask()["calls"] - before, 1)
                    seen_probe.setdefault(name, []).append(result)
    finally:
        stop(ours)
        stop(peer)
        forwarder.close()
    probe_table(ctx, probes, seconds)

    rows, figures = [], {}
    for delay, seen in by_delay.items():
        ratios = [o["rps"] / max(p["rps"], 1e-9) for o, p in zip(seen["ours"], seen["peer"], strict=True)]
        ours_rps, peer_rps = median(r["rps"] for r in seen["ours"]), median(r["rps"] for r in seen["peer"])
        ours_cpu = median(r["server_cpu_ms_per_request"] for r in seen["ours"])
        peer_cpu = median(r["server_cpu_ms_per_request"] for r in seen["peer"])
        per_call = median(seen["per_call"])
        figures[f"{delay:g}"] = {"ours_rps": ours_rps, "peer_rps": peer_rps, "ratio": median(ratios),
                                 "ours_cpu_ms": ours_cpu, "peer_cpu_ms": peer_cpu, "messages_per_call": per_call}
        rows.append([f"+{2 * delay:g} ms", fmt(ours_rps), fmt(peer_rps), f"{median(ratios):.2f}×",
                     ", ".join(f"{r:.2f}" for r in ratios), f"{ours_cpu:.2f}", f"{peer_cpu:.2f}", f"{per_call:.1f}"])
    ctx.figures["latency"] = figures
    ctx.table(f"receive vs the peer by the emulator's latency: wrk -c{THREADS}, {seconds:g} s a repeat, both through "
              f"one delaying TCP forwarder",
              ["added to a round trip", "receive req/s", "peer req/s", "ratio (median of pairs)", "pairs",
               "receive CPU ms/req", "peer CPU ms/req", "receive messages a Publish call"], rows,
              note="The forwarder (benchmarks/latency.py) runs on the load's CPU with the emulator and wrk; the delay "
                   "applies to every chunk each way, so a Publish call's round trip grows by twice it. Repeats run "
                   "every delay in turn, peer then receive, so the ratios are paired.")
    low, high = by_delay[DELAYS_MS[0]], by_delay[DELAYS_MS[-1]]
    low_ratio = median(o["rps"] / max(p["rps"], 1e-9) for o, p in zip(low["ours"], low["peer"], strict=True))
    high_ratio = median(o["rps"] / max(p["rps"], 1e-9) for o, p in zip(high["ours"], high["peer"], strict=True))
    ctx.row("receive ÷ peer as the emulator's latency grows", f"{low_ratio:.2f}× at +0 ms",
            f"{high_ratio:.2f}× at +{2 * DELAYS_MS[-1]:g} ms", "—", "explains the machine dependence", None,
            note=f"messages a Publish call {median(low['per_call']):.1f} → {median(high['per_call']):.1f}")


if __name__ == "__main__":
    sys.exit(main())
