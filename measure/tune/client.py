"""The Measurement API client: one signed POST per attempt, a typed Outcome back.

HTTP framing lives here; the signature comes from `measure.tune.signing`'s steps and the outcome
rules from `measure.tune.outcome`. A `measure.gcp.connections.Pool` keeps keep-alive connections and is
safe to share across the threads of one instance (gen2 functions serve concurrent requests).
Not a requests.Session: the benchmark profile showed requests' per-call environment scan,
cookie merge and re-preparation costing more than the rest of an attempt (and its import, cold
start time). Users who already have a Session sign with `measure.tune.signing.MeasureAuth` instead.

The body is the signed parameter string itself (without its leading "&"), so what is sent is
byte for byte what was signed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from measure.config import check_endpoint
from measure.gcp.connections import ConnectionFailedError, Pool, RequestTimeoutError
from measure.tune import signing
from measure.tune.outcome import Outcome, classify, unreachable

# Connect fast or give up (a little over a TCP retransmit window); the API itself may be slow.
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
USER_AGENT = "measure/0.1 (+server-to-server)"
# Keys go into the body unescaped, as the spec signs them; only these characters are safe so.
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.~-]+")

Credentials = Callable[[], tuple[str, str]]  # () -> (consumer_key, private_key), read per attempt


class MeasurementClient:
    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        pool_size: int = 64,
    ):
        self.endpoint = check_endpoint(endpoint)
        self.credentials = credentials
        self.host, self.uri = signing.request_target(self.endpoint)
        # No automatic retries: a retry is the pipeline's decision, with backoff and a fresh timestamp.
        self.pool = Pool(pool_size, connect_timeout=connect_timeout, read_timeout=read_timeout)

    def deliver(self, params: Mapping[str, str]) -> Outcome:
        """POST the parameters, signed with a fresh mat-timestamp, and classify the answer."""
        unsafe = [key for key in params if not _SAFE_KEY.fullmatch(key)]
        if unsafe:
            raise ValueError(f"parameter name {unsafe[0]!r} is not [A-Za-z0-9_.~-]+")
        consumer_key, private_key = self.credentials()
        started = time.monotonic()
        post_params = signing.encode_post_params(params)
        timestamp = str(int(time.time()))
        signature = signing.generate_signature(private_key, "POST", self.host, self.uri, timestamp, post_params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
            **signing.signing_headers(consumer_key, signature, timestamp),
        }
        try:
            response = self.pool.request("POST", self.endpoint, body=post_params[1:].encode(), headers=headers)
        except RequestTimeoutError:
            return unreachable("timeout", time.monotonic() - started)
        except ConnectionFailedError as exc:
            cause = exc.__cause__
            return unreachable(f"connection error: {type(cause or exc).__name__}", time.monotonic() - started)
        return classify(response.status, response.headers, response.data, time.monotonic() - started)

    def close(self) -> None:
        self.pool.clear()
