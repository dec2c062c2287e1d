"""What one Publish call costs the caller's CPU, by the HTTP stack under it: paired, interleaved.

    python -m benchmarks.publish_call [--rounds 5] [--calls 300]

Starts its own emulator (on CPU 1) and times, on CPU 0, one-message Publish calls made four ways,
in turn within every round, so each round's ratios share the machine's state:
  session         requests.Session.request, as measure.gcp.googleapi made it until issue 23 (trust_env on)
  no environment  the same with trust_env off (no proxy or netrc look-ups a call)
  prepared        a prepared request copied and sent (Session.send): what requests costs without
                  building a request each call; AuthorizedSession adds its token in request(), so
                  this is a bound, not an option as it stands
  urllib3         the adapter's urllib3 pool directly (what google-auth's AuthorizedHttp runs on,
                  and so what measure.gcp.googleapi makes since issue 23)
Prints CPU µs a call for each and the median over rounds of each one's ratio to `session`.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import LOAD_CPUS, SERVER_CPUS, pinned_children


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)

    import requests
    import requests.adapters
    import urllib3

    from measure.dev.emulator import Emulator, Names, create_topology

    with pinned_children(LOAD_CPUS):
        emulator = Emulator.start(log_path=Path("/tmp/benchmarks-publish-call-emulator.log"))
    try:
        with pinned_children(SERVER_CPUS):
            return _measure(emulator, create_topology, Names, requests, urllib3, args)
    finally:
        emulator.stop()


def _measure(emulator, create_topology, names, requests, urllib3, args) -> int:
    topology = create_topology(emulator.project, emulator_host=emulator.host, names=names().suffixed("-call"))
    url = f"http://{emulator.host}/v1/projects/{emulator.project}/topics/{topology.names.events_topic}:publish"
    data = base64.b64encode(b'{"v":1,"event":{"event_id":"0123456789abcdef0123456789abcdef"}}').decode()
    payload = json.dumps({"messages": [{"data": data, "attributes": {"event_id": "e", "attempt": "0"}}]}).encode()
    headers = {"Content-Type": "application/json"}

    def session(trust_env: bool):
        made = requests.Session()
        made.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16, max_retries=0))
        made.trust_env = trust_env
        return made

    with_env, without_env = session(True), session(False)
    prepared = without_env.prepare_request(requests.Request("POST", url, data=payload, headers=headers))
    pool = urllib3.PoolManager(maxsize=16).connection_from_url(url)
    path = url.split(emulator.host, 1)[1]

    def via(made):
        return lambda: made.request("POST", url, data=payload, headers=headers, timeout=(5, 20),
                                    allow_redirects=False).json()

    def via_prepared():
        request = prepared.copy()
        request.prepare_body(payload, None)
        return without_env.send(request, timeout=(5, 20), allow_redirects=False).json()

    def via_urllib3():
        answer = pool.urlopen("POST", path, body=payload, headers=headers, retries=False, redirect=False,
                              timeout=urllib3.Timeout(connect=5, read=20))
        return json.loads(answer.data)

    ways = {"session": via(with_env), "no environment": via(without_env), "prepared": via_prepared,
            "urllib3": via_urllib3}
    for call in ways.values():  # warm: connections, the emulator's JIT
        for _ in range(100):
            call()
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, call in ways.items():
            began = time.process_time()
            for _ in range(args.calls):
                call()
            cpu[name].append(1e6 * (time.process_time() - began) / args.calls)
    for name in ways:
        ratios = [mine / base for mine, base in zip(cpu[name], cpu["session"], strict=True)]
        print(f"{name:15s} CPU µs a call: median {statistics.median(cpu[name]):6.0f} "
              f"({', '.join(f'{x:.0f}' for x in cpu[name])}); ÷ session, median of rounds "
              f"{statistics.median(ratios):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
