"""One send instance without the HTTP server: `Sender.handle` (send's entry logic) from N threads.

    python -m benchmarks.send_driver --workers 64 --events 8000 --out result.json

Configured from the environment like the function (MEASURE_ENDPOINT points at the sandbox). The
events are built before the clock starts; each worker takes the next one and hands it to the
same method the `send` entry point calls. Writes JSON: events/s, outcomes, the client's pool's
own connection and request counts, CPU seconds and peak RSS. Log lines go to stdout as in Cloud Run.
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import sys
import threading
import time
from collections import Counter
from types import SimpleNamespace

from measure import config as config_module
from measure.events import validate
from measure.functions.send import Sender
from measure.gcp.publisher import Publisher
from measure.gcp.secrets import Secrets
from measure.pipeline.delivery import Delivery
from measure.pipeline.message import event_message
from measure.tune.client import MeasurementClient


def cloud_events(count: int) -> list[SimpleNamespace]:
    now = int(time.time())
    raw = [{"user_id": f"send-{now}-{i:08d}", "event_name": "game_open", "time_stamp": now, "platform": "pc",
            "storefront": "steam", "ip": f"175.{124 + (i >> 16) % 100}.{(i >> 8) & 255}.{(i & 255) or 1}"}
           for i in range(count)]
    out = []
    for event in validate(raw, site_ids={"pc/steam": "2960"}, now=now):
        data, attributes = event_message(event)
        out.append(SimpleNamespace(data={"message": {"data": base64.b64encode(data).decode(),
                                                     "attributes": attributes}}))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.send_driver")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    config = config_module.load()
    client = MeasurementClient(config.endpoint, Secrets(config).credentials, pool_size=args.workers)
    sender = Sender(Delivery(config, client, Publisher(config.project or "")))
    todo = cloud_events(args.events)
    results: Counter[str] = Counter()
    lock = threading.Lock()
    position = iter(range(len(todo)))

    def work() -> None:
        local: Counter[str] = Counter()
        while True:
            with lock:
                i = next(position, None)
            if i is None:
                break
            local[sender.handle(todo[i]).result] += 1
        with lock:
            results.update(local)

    threads = [threading.Thread(target=work) for _ in range(args.workers)]
    cpu0, began = time.process_time(), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu0
    connections, requests = client.connection_counts()  # the adapter's pool's own counts
    with open(args.out, "w") as f:
        json.dump({"events": len(todo), "seconds": elapsed, "per_s": len(todo) / elapsed, "results": results,
                   "pool_connections": connections, "pool_requests": requests, "cpu_s": cpu,
                   "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
