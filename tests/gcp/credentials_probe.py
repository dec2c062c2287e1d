"""Run in a fresh process by tests/gcp/test_credentials.py: google-auth reads GCE_METADATA_HOST /
GCE_METADATA_IP when it is imported, so the stand-in metadata server must be in the environment
before then. Publishes from `--threads` threads for `--seconds` through the deployed path
(google.auth.default() credentials, google-auth's AuthorizedHttp, Publisher) to a Pub/Sub stand-in at
`--pubsub`, and prints one JSON line: calls made, errors seen."""

from __future__ import annotations

import argparse
import json
import threading
import time

from measure.gcp import credentials, googleapi
from measure.gcp.publisher import Publisher, PublishError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pubsub", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.0)
    args = parser.parse_args()
    publisher = Publisher("p", googleapi.Api(args.pubsub, credentials.pubsub_http(args.threads)))
    calls, errors = [0] * args.threads, []
    deadline = time.monotonic() + args.seconds

    def work(i: int) -> None:
        while True:
            try:
                publisher.publish("t", [(b"x", {})], timeout=10)
            except PublishError as exc:
                errors.append(str(exc))
            calls[i] += 1
            if time.monotonic() >= deadline:
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"calls": sum(calls), "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
