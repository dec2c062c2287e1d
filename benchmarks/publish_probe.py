"""The publish ceiling: measure.gcp.publisher.Publisher alone, as receive uses it, against the emulator.

    python -m benchmarks.publish_probe --topic NAME --batch 1 --threads 16 --seconds 3

`--threads` callers each publish `--batch` messages and wait for every confirmation, over and
over, for `--seconds`; prints one JSON line with messages/s. `--mode client` goes through
measure.gcp.publisher.Publisher as receive does (concurrent callers' messages share Publish calls);
`--mode direct` makes one Publish call per caller per batch, body built once, no sharing: about
what the emulator itself takes; `--mode peer` publishes with google-cloud-pubsub's PublisherClient
as the idiomatic peer does (`publish(...).result()` for each message). Run it pinned to the CPU
the function gets and it says how much of receive's figure the publish path alone allows.
`--calls-in-flight N` sets measure.gcp.publisher.MAX_CALLS_IN_FLIGHT for the client mode (the
latency row compares 1 and 2). The JSON line also has `cpu_ms_per_message`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

from measure.events import validate
from measure.gcp.publisher import Publisher
from measure.pipeline.message import event_message


def publisher_of(publisher: Publisher, topic: str):
    """One Publish call per batch, its body built once: no queueing, no sharing of calls."""
    import base64

    def publish(batch):
        body = {"messages": [{"data": base64.b64encode(d).decode(), "attributes": a} for d, a in batch]}
        publisher.api.call("POST", f"/v1/projects/{publisher.project}/topics/{topic}:publish", body, timeout=20)

    return publish


def peer_publisher(topic: str):
    """google-cloud-pubsub as Google's samples use it: one global client, a future a message, each awaited."""
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient()
    path = client.topic_path(os.environ["GOOGLE_CLOUD_PROJECT"], topic)

    def publish(batch):
        for future in [client.publish(path, data, **attributes) for data, attributes in batch]:
            future.result()

    return publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_probe")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--mode", choices=("client", "direct", "peer"), default="client")
    parser.add_argument("--calls-in-flight", type=int, default=None,
                        help="Publish calls a topic at once (measure.gcp.publisher.MAX_CALLS_IN_FLIGHT)")
    args = parser.parse_args(argv)
    if args.calls_in_flight is not None:
        from measure.gcp import publisher as publisher_module

        publisher_module.MAX_CALLS_IN_FLIGHT = args.calls_in_flight
    now = int(time.time())
    raw = [{"user_id": f"probe-{i:08d}", "event_name": "game_open", "ip": "175.124.248.15", "time_stamp": now,
            "platform": "pc", "storefront": "steam"} for i in range(args.batch)]
    messages = [event_message(e) for e in validate(raw, site_ids={"pc/steam": "2960"}, now=now)]
    publisher = Publisher(os.environ["GOOGLE_CLOUD_PROJECT"])
    publish = {"direct": lambda: publisher_of(publisher, args.topic),
               "peer": lambda: peer_publisher(args.topic),
               "client": lambda: lambda batch: publisher.publish(args.topic, batch)}[args.mode]()
    publish(messages[:1])  # connect first
    count = [0] * args.threads
    deadline = time.monotonic() + args.seconds

    def work(i: int) -> None:
        while time.monotonic() < deadline:
            publish(messages)
            count[i] += len(messages)

    began = time.monotonic()
    cpu0 = time.process_time()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    cpu = time.process_time() - cpu0
    print(json.dumps({"messages": sum(count), "seconds": elapsed, "per_s": sum(count) / elapsed,
                      "cpu_share": cpu / elapsed, "cpu_ms_per_message": 1000 * cpu / max(sum(count), 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
