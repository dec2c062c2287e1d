"""What a million events, and an idle month, cost on Google Cloud, from the figures a benchmark run measured.

    python -m benchmarks.cost [benchmarks/figures.json]

`python -m benchmarks` writes benchmarks/figures.json (the measured per-event times); this turns
them into billable quantities with the deployed settings (terraform/modules/measure/variables.tf defaults: 1 vCPU
and 256 MB per instance, concurrency receive 16 / send 64 / sweep 1, Scheduler every 5 minutes,
secrets cached 300 s, routine logs excluded, receive scaled to zero) and the prices below, and
prints the table and the totals against the targets that docs/cost.md quotes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from measure.functions.sweep import EMPTY_PULL_S

FIGURES = Path(__file__).resolve().parent / "figures.json"

# Prices in USD as published on Google Cloud's pricing pages, read for this model on 2026-11-23
# (Cloud Run request-based billing, Tier 1 regions such as us-central1). Check before relying.
PRICES = {
    "vcpu_s": 0.000024,        # Cloud Run (gen2 functions), per vCPU-second, CPU allocated during requests
    "gib_s": 0.0000025,        # per GiB-second of memory
    "idle_vcpu_s": 0.0000025,  # an idle minimum instance, per vCPU-second (memory: gib_s)
    "request": 0.40 / 1e6,     # per request
    "pubsub_tib": 40.0,        # Pub/Sub throughput, per TiB; at least 1,000 bytes per publish/push/pull request
    "secret_access": 0.03 / 1e4,  # Secret Manager, per access operation
    "secret_version_month": 0.06,  # Secret Manager, per active version per month (automatic replication: one location)
    "scheduler_job_month": 0.10,  # Cloud Scheduler, per job per month (3 jobs free per billing account)
    "logging_gib": 0.50,       # Cloud Logging ingestion, per GiB beyond 50 GiB per project per month
    "egress_gib": 0.12,        # Premium Tier internet egress (to the Measurement API), per GiB
    "registry_gib_month": 0.10,  # Artifact Registry storage, per GiB-month beyond 0.5 GiB
}
FREE = {"vcpu_s": 180_000, "gib_s": 360_000, "requests": 2_000_000, "pubsub_gib": 10, "logging_gib": 50}

# What the cost targets of issue 16 allow (USD, no free tier applied).
TARGETS = {"busy": 1.50, "sparse": 6.00, "idle": 0.50}

# Deployed settings: the defaults in terraform/modules/measure/variables.tf.
VCPU = 1.0               # cpu = "1"
MEMORY_GIB = 256 / 1024  # memory = "256M", billed as 0.25 GiB here (256 MB = 0.238 GiB; the larger is the safe side)
SEND_CONCURRENCY = 64    # concurrency.send (also send's THREADS)
SECRET_TTL_S = 300       # secret_ttl_seconds (MEASURE_SECRET_TTL)
SECRETS = 3              # consumer key, private key, webhook tokens: one active version each
EVENTS = 1_000_000
MONTH_S = 30 * 24 * 3600
MESSAGE_BYTES = 320         # one measure-events message: ~200 B data, ~70 B attributes, timestamp, id (measured 303)
LOG_LINE_BYTES = 450        # one structured log line as Cloud Logging stores it (with its metadata)
REQUEST_LOG_BYTES = 1200    # Cloud Run's own request log entry per HTTP request/push
API_REQUEST_BYTES = 800     # one signed POST to the Measurement API: ~200 B body, headers, TLS framing
REGISTRY_GIB = 0.2          # the three functions' images after a first deploy (estimate, not measured)
SWEEPS_PER_MONTH = 30 * 24 * 12  # sweep_schedule "*/5 * * * *": every 5 minutes
# A sweep that finds the retry queue empty: its one pull waits EMPTY_PULL_S (the real service holds an
# empty pull open; the emulator answers at once, so a local run cannot measure it), plus the sweep's
# own work around it, well under 100 ms. A run's figures.json may carry a measured time as sweep.empty_s.
EMPTY_SWEEP_BOUND_S = EMPTY_PULL_S + 0.1
BILLING_STEP_S = 0.1  # Cloud Run rounds billable instance time up to the next 100 ms


@dataclass(frozen=True)
class Row:
    item: str
    quantity: str
    busy: float    # USD for a million events that keep instances busy (or, monthly rows, per month)
    sparse: float  # USD for a million events one at a time over a month
    kind: str      # "event": as deployed; "alternative": not in the totals; "monthly": paid even with no events


def billed_s(seconds: float) -> float:
    """Billable instance time of one request served alone: rounded up to the next 100 ms."""
    return max(BILLING_STEP_S, -(-seconds // BILLING_STEP_S) * BILLING_STEP_S)


def compute_price(vcpu: float = VCPU) -> float:
    """USD per instance-second while a request is in flight."""
    return vcpu * PRICES["vcpu_s"] + MEMORY_GIB * PRICES["gib_s"]


def min_instance_month() -> float:
    """USD a month for one idle minimum instance of receive (receive_min_instances), at the deployed size."""
    return MONTH_S * (VCPU * PRICES["idle_vcpu_s"] + MEMORY_GIB * PRICES["gib_s"])


def model(figures: dict) -> list[Row]:
    """Every billed item per million events (and per month), no free tier applied."""
    receive = figures.get("receive", {})
    send = figures.get("send", {})
    single_rps = receive.get("single_rps") or 500.0
    batch_eps = receive.get("batch_events_s") or 5000.0
    # The figure at the deployed concurrency: "events_s" is Delivery driven by "workers" threads
    # (64); "deployed_events_s" is, despite its name, the 8-thread comparison run.
    send_eps = send.get("events_s") or 1000.0
    send_threads = send.get("workers") or SEND_CONCURRENCY
    send_how = f"1 ÷ {send_eps:,.0f} events/s measured, Delivery with {send_threads} threads"
    if send_threads != SEND_CONCURRENCY:
        send_how += f", not the deployed {SEND_CONCURRENCY}"
    api_s = (send.get("latency_ms") or 50) / 1000
    empty_sweep_s = figures.get("sweep", {}).get("empty_s") or EMPTY_SWEEP_BOUND_S
    price = compute_price()
    rows: list[Row] = []

    def compute(name: str, requests: float, busy_s: float, latency_s: float, how: str, kind: str) -> None:
        sparse_s = billed_s(latency_s)
        rows.append(Row(f"{name}: CPU + memory", f"{busy_s * requests:,.0f} instance-s busy ({how}); "
                        f"{sparse_s * requests:,.0f} sparse ({sparse_s * 1000:.0f} ms a request)",
                        busy_s * requests * price, sparse_s * requests * price, kind))
        fee = requests * PRICES["request"]
        rows.append(Row(f"{name}: requests", f"{requests:,.0f}", fee, fee, kind))

    compute("receive, one event a request", EVENTS, 1 / single_rps, 0.03, f"1 ÷ {single_rps:,.0f} req/s measured",
            "event")
    compute("receive, batches of 500 (alternative)", EVENTS / 500, 500 / batch_eps, 500 / batch_eps,
            f"500 ÷ {batch_eps:,.0f} events/s measured", "alternative")
    compute(f"send (concurrency {SEND_CONCURRENCY}, API answering in {api_s * 1000:.0f} ms)", EVENTS, 1 / send_eps,
            api_s + 0.01, send_how, "event")

    def flat(item: str, quantity: str, usd: float, kind: str) -> None:
        rows.append(Row(item, quantity, usd, usd, kind))

    tib = 1024 ** 4
    single = EVENTS * max(1000, MESSAGE_BYTES)
    batched = EVENTS * MESSAGE_BYTES
    flat("Pub/Sub publish, one event a request", f"{single / 1e9:.2f} GB (1,000 B minimum a request)",
         single / tib * PRICES["pubsub_tib"], "event")
    flat("Pub/Sub publish, batches (alternative)", f"{batched / 1e9:.2f} GB", batched / tib * PRICES["pubsub_tib"],
         "alternative")
    flat("Pub/Sub push to send (Eventarc)", f"{single / 1e9:.2f} GB (a push a message, 1,000 B minimum)",
         single / tib * PRICES["pubsub_tib"], "event")
    # ingest_routine_logs = false: Cloud Run's request logs below 400 are dropped; the two lines
    # `python -m measure status` reads for a delivered event (receive's "accepted", the "delivery") are
    # kept (issue 21), as are warnings, errors and failed requests.
    kept = EVENTS * 2 * LOG_LINE_BYTES
    flat("Cloud Logging (request logs excluded; status's lines kept)",
         f"{kept / 2**30:.2f} GiB (an \"accepted\" and a \"delivery\" line an event)",
         kept / 2**30 * PRICES["logging_gib"], "event")
    routine = EVENTS * (2 * LOG_LINE_BYTES + 2 * REQUEST_LOG_BYTES)
    flat("Cloud Logging with ingest_routine_logs = true (alternative)",
         f"{routine / 2**30:.2f} GiB (receive and send: an INFO line and a request log each)",
         routine / 2**30 * PRICES["logging_gib"], "alternative")
    egress = EVENTS * API_REQUEST_BYTES
    flat("egress to the Measurement API", f"{egress / 2**30:.2f} GiB", egress / 2**30 * PRICES["egress_gib"], "event")
    # ≤ 1 per secret per TTL per instance: 3 secrets, one receive and one send instance up all month
    # (a sweep that finds nothing due reads none: secrets are read on first use, and only delivering uses them).
    accesses = SECRETS * MONTH_S / SECRET_TTL_S
    flat("Secret Manager accesses (a month with traffic)", f"≤ {accesses:,.0f}",
         accesses * PRICES["secret_access"], "event")
    # Fixed per month, whatever the volume:
    sweep_s = SWEEPS_PER_MONTH * billed_s(empty_sweep_s)
    flat("sweep on an empty retry queue (per month)",
         f"{SWEEPS_PER_MONTH:,} calls × {billed_s(empty_sweep_s):g} s billed (one pull held open until it gives up)",
         sweep_s * price + SWEEPS_PER_MONTH * PRICES["request"], "monthly")
    flat("Cloud Scheduler (per month)", "1 job", PRICES["scheduler_job_month"], "monthly")
    flat("Secret Manager versions (per month)", f"{SECRETS} active versions",
         SECRETS * PRICES["secret_version_month"], "monthly")
    flat("Artifact Registry storage (per month)", f"about {REGISTRY_GIB:g} GiB of images (estimate)",
         REGISTRY_GIB * PRICES["registry_gib_month"], "monthly")
    return rows


def totals(rows: list[Row]) -> dict[str, float]:
    """USD per million events busy and sparse (as deployed), and per idle month."""
    events = [r for r in rows if r.kind == "event"]
    return {
        "busy": sum(r.busy for r in events),
        "sparse": sum(r.sparse for r in events),
        "idle": sum(r.busy for r in rows if r.kind == "monthly"),
    }


def markdown(figures: dict) -> str:
    rows = model(figures)
    lines = ["| item | quantity for 1,000,000 events | USD, busy | USD, sparse |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.item} | {r.quantity} | {r.busy:,.2f} | {r.sparse:,.2f} |" for r in rows]
    got = totals(rows)
    lines += ["", "| total (no free tier) | USD | target | |", "| --- | --- | --- | --- |"]
    names = {"busy": "a million events in bursts (busy)", "sparse": "a million events one at a time (sparse)",
             "idle": "a month with no events (idle)"}
    for key, name in names.items():
        verdict = "meets" if round(got[key], 2) <= TARGETS[key] else "**misses**"
        lines.append(f"| {name} | {got[key]:,.2f} | ≤ {TARGETS[key]:,.2f} | {verdict} |")
    lines += ["", f"Each warm instance of receive (`receive_min_instances`) adds ${min_instance_month():,.2f} a month "
              "(idle minimum-instance rate, 1 vCPU and 256 MB)."]
    return "\n".join(lines)


def receive_bound(figures: dict) -> str:
    """What limited receive's one-event figure in the run the price is from: its CPU, or the
    emulator's Publish round trip (then the busy price follows the emulator, not receive)."""
    receive = figures.get("receive", {})
    rps, cpu_ms = receive.get("single_rps"), receive.get("server_cpu_ms_per_request_single")
    if not rps or not cpu_ms:
        return ""
    busy = rps * cpu_ms / 1000
    what = ("bound by its CPU" if busy >= 0.85 else
            "bound by the Publish round trip (the emulator's latency), not its CPU: at its CPU alone an instance "
            f"would serve {1000 / cpu_ms:,.0f} req/s")
    text = (f"receive in that run: {rps:,.0f} req/s at {cpu_ms:.2f} ms of server CPU a request, its CPU "
            f"{busy:.0%} busy, so {what}.")
    per_call = (figures.get("latency", {}).get("0") or {}).get("messages_per_call")
    if per_call:
        text += f" Its Publish calls carried {per_call:.1f} messages each (benchmarks/latency.py)."
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else FIGURES
    figures = json.loads(path.read_text()) if path.exists() else {}
    print(markdown(figures))
    bound = receive_bound(figures)
    if bound:  # for whoever reads the prices against the run, not part of docs/cost.md's quote
        print(f"\n{bound}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
