"""measure.dev.sandbox in a process of its own for the benchmarks.

    python -m benchmarks.sandbox_server --port P --latency-ms 50 --consumer-key C --private-key K

`GET /_sandbox/stats` says `connections`, how many TCP connections the sandbox accepted (keep-alive
requests on one do not add to it), so requests minus connections is the number of requests that
rode a reused connection. `POST /_sandbox/reset` zeroes it with the rest of the stats.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from measure.dev.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--consumer-key", required=True)
    parser.add_argument("--private-key", required=True)
    args = parser.parse_args(argv)
    # A short request log: the benchmarks read stats, and 100,000 kept entries would only cost memory.
    sandbox = Sandbox({args.consumer_key: args.private_key}, faults={"latency_ms": args.latency_ms},
                      log_size=1000, log_requests=False)
    sandbox.start("127.0.0.1", args.port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    print(f"sandbox on {sandbox.url}, latency {args.latency_ms:g} ms", flush=True)
    while not stopping.wait(1.0):
        pass
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
