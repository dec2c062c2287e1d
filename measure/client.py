"""The Measurement API client: one signed POST per attempt, a typed Outcome back.

HTTP framing lives here; signing is `measure.signing.MeasureAuth`'s, outcome rules are
`measure.outcome`'s. One `requests.Session` per client keeps pooled keep-alive connections, which
urllib3 hands out safely to many threads at once (gen2 functions serve concurrent requests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import requests
from requests.adapters import HTTPAdapter

from measure.config import check_endpoint
from measure.outcome import Outcome, classify, unreachable
from measure.signing import MeasureAuth

# Connect fast or give up (a little over a TCP retransmit window); the API itself may be slow.
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0

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
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        # No automatic retries: a retry is a decision of the pipeline, with backoff and a fresh timestamp.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = "measure/0.1 (+server-to-server)"

    def deliver(self, params: Mapping[str, str]) -> Outcome:
        """POST the parameters, signed with a fresh mat-timestamp, and classify the answer."""
        consumer_key, private_key = self.credentials()
        started = time.monotonic()
        try:
            response = self.session.post(
                self.endpoint,
                data=params,
                auth=MeasureAuth(consumer_key, private_key),
                timeout=self.timeout,
                allow_redirects=False,
            )
            body = response.content
        except requests.Timeout:
            return unreachable("timeout", time.monotonic() - started)
        except requests.ConnectionError as exc:
            return unreachable(f"connection error: {type(exc).__name__}", time.monotonic() - started)
        except requests.RequestException as exc:
            return unreachable(f"request failed: {type(exc).__name__}", time.monotonic() - started)
        return classify(response.status_code, response.headers, body, time.monotonic() - started)

    def close(self) -> None:
        self.session.close()
