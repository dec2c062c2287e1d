"""What a million events cost on Google Cloud, from the figures a benchmark run measured.

    python -m benchmarks.cost [benchmarks/figures.json]

`python -m benchmarks` writes benchmarks/figures.json (the measured per-event times); this turns
them into billable quantities with the deployed settings (terraform/variables.tf: 1 vCPU and
256 MB per instance, concurrency receive 16 / send 8 / sweep 1, Scheduler every 5 minutes) and
the prices below. docs/cost.md explains the model and quotes one run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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

VCPU = 1.0
MEMORY_GIB = 256 / 1024  # "256M" is billed as 0.25 GiB here (256 MB = 0.238 GiB; the larger is the safe side)
EVENTS = 1_000_000
MESSAGE_BYTES = 420         # one measure-events message: ~260 B data + attributes + timestamp + id
LOG_LINE_BYTES = 450        # one structured log line as Cloud Logging stores it (with its metadata)
REQUEST_LOG_BYTES = 1200    # Cloud Run's own request log entry per HTTP request/push
API_REQUEST_BYTES = 1100    # one signed POST to the Measurement API with TLS framing, sent
SWEEPS_PER_MONTH = 30 * 24 * 12  # every 5 minutes
EMPTY_SWEEP_S = 10.0        # an empty retry subscription: one pull that waits its timeout


def instance_seconds_per_event(events_per_s: float) -> float:
    """Billable instance time per event on a busy instance: request-based billing charges the
    instance while any request is in flight, so a saturated instance costs 1/throughput a event."""
    return 1.0 / events_per_s


def model(figures: dict) -> list[tuple[str, str, float]]:
    """(item, how it is counted, USD per million events) with no free tier applied."""
    receive = figures.get("receive", {})
    send = figures.get("send", {})
    single_rps = receive.get("single_rps") or 500.0
    batch_eps = receive.get("batch_events_s") or 5000.0
    send_eps_deployed = send.get("deployed_events_s") or 150.0
    rows = []

    def compute(name: str, per_event_s: float, requests: float, how: str) -> None:
        seconds = per_event_s * EVENTS
        usd = seconds * VCPU * PRICES["vcpu_s"] + seconds * MEMORY_GIB * PRICES["gib_s"]
        rows.append((f"{name}: CPU + memory", f"{seconds:,.0f} instance-s ({how})", usd))
        rows.append((f"{name}: requests", f"{requests:,.0f} requests", requests * PRICES["request"]))

    compute("receive, one event a request", instance_seconds_per_event(single_rps), EVENTS,
            f"1 ÷ {single_rps:,.0f} req/s per busy instance")
    compute("receive, batches of 500 (alternative)", instance_seconds_per_event(batch_eps), EVENTS / 500,
            f"1 ÷ {batch_eps:,.0f} events/s per busy instance")
    compute("send (concurrency 8, API at 50 ms)", instance_seconds_per_event(send_eps_deployed), EVENTS,
            f"1 ÷ {send_eps_deployed:,.0f} events/s per busy instance")
    sweep_s = SWEEPS_PER_MONTH * EMPTY_SWEEP_S
    rows.append(("sweep, idle retry queue (per month, not per event)",
                 f"{SWEEPS_PER_MONTH:,} calls × {EMPTY_SWEEP_S:g} s",
                 sweep_s * (VCPU * PRICES["vcpu_s"] + MEMORY_GIB * PRICES["gib_s"])
                 + SWEEPS_PER_MONTH * PRICES["request"]))
    tib = 1024 ** 4
    publish_single = EVENTS * max(1000, MESSAGE_BYTES)
    publish_batched = EVENTS * MESSAGE_BYTES
    push = EVENTS * max(1000, MESSAGE_BYTES)
    rows.append(("Pub/Sub publish, one event a request", f"{publish_single / 1e9:.2f} GB (1,000 B minimum a request)",
                 publish_single / tib * PRICES["pubsub_tib"]))
    rows.append(("Pub/Sub publish, batches (alternative)", f"{publish_batched / 1e9:.2f} GB",
                 publish_batched / tib * PRICES["pubsub_tib"]))
    rows.append(("Pub/Sub push to send (Eventarc)", f"{push / 1e9:.2f} GB (one push a message, 1,000 B minimum)",
                 push / tib * PRICES["pubsub_tib"]))
    logs = EVENTS * (2 * LOG_LINE_BYTES + 2 * REQUEST_LOG_BYTES)
    rows.append(("Cloud Logging", f"{logs / 2**30:.2f} GiB (receive + send: a line and a request log each)",
                 logs / 2**30 * PRICES["logging_gib"]))
    egress = EVENTS * API_REQUEST_BYTES
    rows.append(("egress to the Measurement API", f"{egress / 2**30:.2f} GiB", egress / 2**30 * PRICES["egress_gib"]))
    # At most one access per secret per TTL per instance: 3 secrets, 300 s TTL, one instance of
    # receive and of send alive all month is 3 × 8,640 accesses.
    accesses = 3 * 30 * 24 * 3600 / 300
    rows.append(("Secret Manager (per month, not per event)", f"≤ {accesses:,.0f} accesses (one instance each, "
                 "always on)", accesses * PRICES["secret_access"]))
    rows.append(("Cloud Scheduler (per month)", "1 job", PRICES["scheduler_job_month"]))
    return rows


def markdown(figures: dict) -> str:
    rows = model(figures)
    lines = ["| item | quantity for 1,000,000 events | USD, no free tier |", "| --- | --- | --- |"]
    lines += [f"| {item} | {how} | {usd:,.4f} |" for item, how, usd in rows]
    per_event_items = [r for r in rows if "alternative" not in r[0] and "per month" not in r[0]]
    monthly = [r for r in rows if "per month" in r[0]]
    total = sum(r[2] for r in per_event_items)
    lines += ["", f"Per million events, as deployed (single-event webhook calls): **${total:,.2f}**; "
              f"fixed per month: ${sum(r[2] for r in monthly):,.2f}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else FIGURES
    figures = json.loads(path.read_text()) if path.exists() else {}
    print(markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
