"""What a million events cost on Google Cloud, from the figures a benchmark run measured.

    python -m benchmarks.cost [benchmarks/figures.json]

`python -m benchmarks` writes benchmarks/figures.json (the measured per-event times); this turns
them into billable quantities with the deployed settings (terraform/variables.tf defaults: 1 vCPU
and 256 MB per instance, concurrency receive 16 / send 64 / sweep 1, Scheduler every 5 minutes,
secrets cached 300 s) and the prices below. docs/cost.md explains the model and quotes one run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from measure.functions.sweep import PULL_TIMEOUT_S

FIGURES = Path(__file__).resolve().parent / "figures.json"

# Prices in USD as published on Google Cloud's pricing pages, read for this model on 2026-11-23
# (Cloud Run request-based billing, Tier 1 regions such as us-central1). Check before relying.
PRICES = {
    "vcpu_s": 0.000024,        # Cloud Run (gen2 functions), per vCPU-second, CPU allocated during requests
    "gib_s": 0.0000025,        # per GiB-second of memory
    "request": 0.40 / 1e6,     # per request
    "pubsub_tib": 40.0,        # Pub/Sub throughput, per TiB; at least 1,000 bytes per publish/push/pull request
    "secret_access": 0.03 / 1e4,  # Secret Manager, per access operation
    "scheduler_job_month": 0.10,  # Cloud Scheduler, per job per month (3 jobs free per billing account)
    "logging_gib": 0.50,       # Cloud Logging ingestion, per GiB beyond 50 GiB per project per month
    "egress_gib": 0.12,        # Premium Tier internet egress (to the Measurement API), per GiB
}
FREE = {"vcpu_s": 180_000, "gib_s": 360_000, "requests": 2_000_000, "pubsub_gib": 10, "logging_gib": 50}

# Deployed settings: the defaults in terraform/variables.tf.
VCPU = 1.0               # cpu = "1"
MEMORY_GIB = 256 / 1024  # memory = "256M", billed as 0.25 GiB here (256 MB = 0.238 GiB; the larger is the safe side)
SEND_CONCURRENCY = 64    # concurrency.send (also send's THREADS)
SECRET_TTL_S = 300       # secret_ttl_seconds (MEASURE_SECRET_TTL)
EVENTS = 1_000_000
MESSAGE_BYTES = 320         # one measure-events message: ~200 B data, ~70 B attributes, timestamp, id (measured 303)
LOG_LINE_BYTES = 450        # one structured log line as Cloud Logging stores it (with its metadata)
REQUEST_LOG_BYTES = 1200    # Cloud Run's own request log entry per HTTP request/push
API_REQUEST_BYTES = 800     # one signed POST to the Measurement API: ~200 B body, headers, TLS framing
SWEEPS_PER_MONTH = 30 * 24 * 12  # sweep_schedule "*/5 * * * *": every 5 minutes
# An empty retry subscription: sweep makes one REST pull (returnImmediately only on the emulator,
# which answers at once) and the real service holds it until messages come or the client gives up
# after measure.functions.sweep's PULL_TIMEOUT_S. It may answer empty sooner; the full timeout is the bound.
EMPTY_SWEEP_S = PULL_TIMEOUT_S
BILLING_STEP_S = 0.1  # Cloud Run rounds billable instance time up to the next 100 ms


def instance_s(per_event_busy: float, latency_s: float) -> tuple[float, float]:
    """Billable instance-seconds per request: (busy, sparse).

    Busy: steady load keeps instances saturated, and request-based billing charges an instance
    while any request is in flight, so a request costs 1/throughput. Sparse: requests arrive one
    at a time (a million a month is 0.4 a second), so each is billed alone, rounded up to 100 ms."""
    sparse = max(BILLING_STEP_S, -(-latency_s // BILLING_STEP_S) * BILLING_STEP_S)
    return per_event_busy, sparse


def model(figures: dict) -> list[tuple[str, str, float, float]]:
    """(item, quantity, USD busy, USD sparse) per million events, no free tier applied."""
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
    compute_price = VCPU * PRICES["vcpu_s"] + MEMORY_GIB * PRICES["gib_s"]
    rows: list[tuple[str, str, float, float]] = []

    def compute(name: str, requests: float, busy_s: float, latency_s: float, how: str) -> None:
        busy, sparse = instance_s(busy_s, latency_s)
        rows.append((f"{name}: CPU + memory", f"{busy * requests:,.0f} instance-s busy ({how}); "
                     f"{sparse * requests:,.0f} sparse ({sparse * 1000:.0f} ms a request)",
                     busy * requests * compute_price, sparse * requests * compute_price))
        fee = requests * PRICES["request"]
        rows.append((f"{name}: requests", f"{requests:,.0f}", fee, fee))

    compute("receive, one event a request", EVENTS, 1 / single_rps, 0.03,
            f"1 ÷ {single_rps:,.0f} req/s measured")
    compute("receive, batches of 500 (alternative)", EVENTS / 500, 500 / batch_eps, 500 / batch_eps,
            f"500 ÷ {batch_eps:,.0f} events/s measured")
    compute(f"send (concurrency {SEND_CONCURRENCY}, API answering in {api_s * 1000:.0f} ms)", EVENTS, 1 / send_eps,
            api_s + 0.01, send_how)
    tib = 1024 ** 4
    single = EVENTS * max(1000, MESSAGE_BYTES)
    batched = EVENTS * MESSAGE_BYTES
    rows.append(("Pub/Sub publish, one event a request", f"{single / 1e9:.2f} GB (1,000 B minimum a request)",
                 single / tib * PRICES["pubsub_tib"], single / tib * PRICES["pubsub_tib"]))
    rows.append(("Pub/Sub publish, batches (alternative)", f"{batched / 1e9:.2f} GB",
                 batched / tib * PRICES["pubsub_tib"], batched / tib * PRICES["pubsub_tib"]))
    rows.append(("Pub/Sub push to send (Eventarc)", f"{single / 1e9:.2f} GB (a push a message, 1,000 B minimum)",
                 single / tib * PRICES["pubsub_tib"], single / tib * PRICES["pubsub_tib"]))
    logs = EVENTS * (2 * LOG_LINE_BYTES + 2 * REQUEST_LOG_BYTES)
    usd = logs / 2**30 * PRICES["logging_gib"]
    rows.append(("Cloud Logging", f"{logs / 2**30:.2f} GiB (receive and send: a log line and a request log each)",
                 usd, usd))
    egress = EVENTS * API_REQUEST_BYTES
    usd = egress / 2**30 * PRICES["egress_gib"]
    rows.append(("egress to the Measurement API", f"{egress / 2**30:.2f} GiB", usd, usd))
    # Fixed per month, whatever the volume:
    sweep_s = SWEEPS_PER_MONTH * EMPTY_SWEEP_S
    usd = sweep_s * compute_price + SWEEPS_PER_MONTH * PRICES["request"]
    rows.append(("sweep on an empty retry queue (per month)", f"{SWEEPS_PER_MONTH:,} calls × {EMPTY_SWEEP_S:g} s "
                 "(one pull waiting its timeout)", usd, usd))
    # ≤ 1 per secret per TTL per instance; 3 secrets, one receive and one send instance always up (an
    # empty sweep reads none: secrets are read on first use, and only delivering uses them)
    accesses = 3 * 30 * 24 * 3600 / SECRET_TTL_S
    usd = accesses * PRICES["secret_access"]
    rows.append(("Secret Manager (per month)", f"≤ {accesses:,.0f} accesses", usd, usd))
    rows.append(("Cloud Scheduler (per month)", "1 job", PRICES["scheduler_job_month"], PRICES["scheduler_job_month"]))
    return rows


def markdown(figures: dict) -> str:
    rows = model(figures)
    lines = ["| item | quantity for 1,000,000 events | USD, busy | USD, sparse |", "| --- | --- | --- | --- |"]
    lines += [f"| {item} | {how} | {busy:,.2f} | {sparse:,.2f} |" for item, how, busy, sparse in rows]
    deployed = [r for r in rows if "alternative" not in r[0] and "per month" not in r[0]]
    monthly = [r for r in rows if "per month" in r[0]]
    lines += ["", f"A million events as deployed (one event a webhook call): **${sum(r[2] for r in deployed):,.2f}** "
              f"when they come in bursts that keep instances busy, **${sum(r[3] for r in deployed):,.2f}** when they "
              f"trickle in one at a time; plus ${sum(r[2] for r in monthly):,.2f} a month whatever the volume. "
              "No free tier applied."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else FIGURES
    figures = json.loads(path.read_text()) if path.exists() else {}
    print(markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
