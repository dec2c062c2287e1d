"""One instance of `receive` or `send` with Secret Manager faked at the client boundary.

    python -m benchmarks.secrets_probe --target send --events 10000 --threads 16 --out result.json

The environment has no local secret values, so measure reads Secret Manager; the fake stands in
for `SecretManagerServiceClient` (the class itself, as tests/gcp/test_secrets.py does), takes
20 ms per access like a network call, and counts every access. The events go through the real
entry point (functions-framework's app, Flask test clients, one per thread): receive publishes to
the emulator, send delivers to the sandbox.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlencode

import google_crc32c

from benchmarks.common import CONSUMER_KEY, PRIVATE_KEY, TOKEN, seed_event


class FakeSecretManager:
    def __init__(self, values: dict[str, str]):
        self.values = values
        self.accesses: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def access_secret_version(self, request, **kwargs):  # timeout, retry: as measure passes them
        secret_id = request["name"].split("/")[3]
        with self._lock:
            self.accesses.append((time.monotonic(), secret_id))
        time.sleep(0.02)
        data = self.values[secret_id].encode()
        # The library's own message types, as the real client answers (measure asks proto-plus
        # whether data_crc32c is present).
        from google.cloud import secretmanager

        payload = secretmanager.SecretPayload(data=data, data_crc32c=google_crc32c.value(data))
        return secretmanager.AccessSecretVersionResponse(payload=payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.secrets_probe")
    parser.add_argument("--target", choices=("receive", "send"), required=True)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from google.cloud import secretmanager

    fake = FakeSecretManager({"measure-consumer-key": CONSUMER_KEY, "measure-private-key": PRIVATE_KEY,
                              "measure-webhook-tokens": f"{TOKEN}\nrotated-token"})
    secretmanager.SecretManagerServiceClient = lambda **kwargs: fake  # the library's class, faked

    import functions_framework

    from measure.events import validate
    from measure.pipeline.message import event_message

    kind = "http" if args.target == "receive" else "cloudevent"
    app = functions_framework.create_app(target=args.target, source="main.py", signature_type=kind)
    now = int(time.time())
    events = [seed_event(7_000_000 + i, now) for i in range(args.events)]
    if args.target == "receive":
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"}
        bodies = [("/measure", headers, urlencode(e)) for e in events]
        expected = 202
    else:
        headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "1",
                   "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                   "ce-source": "//pubsub.googleapis.com/projects/p/topics/measure-events"}
        bodies = []
        for event in validate(events, site_ids={"pc/steam": "2960"}, now=now):
            data, attributes = event_message(event)
            bodies.append(("/", headers, json.dumps({"message": {"data": base64.b64encode(data).decode(),
                                                                 "attributes": attributes}})))
        expected = 200
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    todo = iter(bodies)

    def work() -> None:
        client = app.test_client()
        local: Counter[int] = Counter()
        while True:
            with lock:
                item = next(todo, None)
            if item is None:
                break
            path, request_headers, body = item
            local[client.post(path, headers=request_headers, data=body.encode()).status_code] += 1
        with lock:
            statuses.update(local)

    began = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    with open(args.out, "w") as f:
        json.dump({"events": len(bodies), "seconds": elapsed, "statuses": statuses, "expected": expected,
                   "accesses": Counter(secret for _, secret in fake.accesses),
                   "access_times": [round(t - began, 3) for t, _ in fake.accesses]}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
