"""Secret Manager accesses for 10,000 events on one instance, counted at the client boundary.

receive and send each run as one instance (benchmarks.secrets_probe: the real entry point, 64
threads, a fake SecretManagerServiceClient that counts). With the deployed TTL (300 s) an
instance should read each secret it uses once; with a 2 s TTL the same run shows the refresh:
at most one access per secret per TTL window the run spans.
"""

from __future__ import annotations

import json
import math
import os
import subprocess

from benchmarks.common import PY, REPO, Context, fmt, function_env, new_topology

SECRETS = {"receive": ("measure-webhook-tokens",), "send": ("measure-consumer-key", "measure-private-key")}


def probe(ctx: Context, target: str, events: int, ttl: int, env: dict[str, str]) -> dict:
    out = ctx.workdir / f"secrets-{target}-{ttl}.json"
    argv = [PY, "-m", "benchmarks.secrets_probe", "--target", target, "--threads", "64",
            "--events", str(events), "--out", str(out)]
    full = {**os.environ, **env, "MEASURE_SECRET_TTL": str(ttl)}
    for name in ("MEASURE_CONSUMER_KEY", "MEASURE_PRIVATE_KEY", "MEASURE_WEBHOOK_TOKENS"):
        full.pop(name, None)
    done = subprocess.run(argv, cwd=REPO, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"secrets probe ({target}) failed: {done.stderr[-1500:]}")
    result = json.loads(out.read_text())
    if set(map(int, result["statuses"])) != {result["expected"]}:
        raise RuntimeError(f"secrets probe ({target}): unexpected answers {result['statuses']}")
    return result


def run(ctx: Context) -> None:
    topology = new_topology(ctx, "-bench-secrets")
    sandbox = ctx.sandbox()
    sandbox.reset(latency_ms=0)
    env = function_env(topology, endpoint=sandbox.serve_url)
    events = 2_000 if ctx.quick else 10_000
    rows, all_met = [], True
    for target in ("receive", "send"):
        for ttl in (300, 2):
            result = probe(ctx, target, events if ttl == 300 else max(1000, events // 4), ttl, env)
            windows = math.floor(result["seconds"] / ttl) + 1
            for secret in SECRETS[target]:
                count = result["accesses"].get(secret, 0)
                met = 1 <= count <= windows
                all_met &= met
                rows.append([target, f"{ttl} s", fmt(result["events"]), fmt(result["seconds"], 1), secret, count,
                             windows, "yes" if met else "**no**"])
            unexpected = set(result["accesses"]) - set(SECRETS[target])
            if unexpected:
                rows.append([target, f"{ttl} s", "", "", f"unexpected: {sorted(unexpected)}", "", "", "**no**"])
                all_met = False
    ctx.table("Secret Manager accesses per instance (fake client at the boundary, 20 ms an access, 64 threads)",
              ["function", "TTL", "events", "seconds", "secret", "accesses", "TTL windows spanned", "≤ 1 per window"],
              rows)
    ctx.row(f"Secret Manager accesses, {events:,} events on one instance",
            "1 per secret used (TTL 300 s); ≤ 1 per secret per window (TTL 2 s)" if all_met else "see table",
            target="≤ 1 per secret per TTL", met=all_met)
