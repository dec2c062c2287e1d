"""The Measurement API client: one signed POST per attempt, a typed Outcome back.

HTTP framing lives here, on `requests`: one Session per client (the runtime builds one client per
instance, shared by its threads), signed by `MeasureAuth` as the Session's auth, over an
`HTTPAdapter` whose pool holds a keep-alive connection per concurrent request. The signature
comes from measure.tune.auth, the outcome rules from measure.tune.outcome.

What the Session is told, and why:
  - no adapter retries (max_retries=0): a retry is the pipeline's decision, with backoff, the
    circuit breaker and a fresh mat-timestamp;
  - no redirects: a signed request goes to the configured endpoint or nowhere; a 3xx is an
    answer like any other (transient by the outcome rules);
  - separate timeouts: connect fast or give up, wait for the answer MEASURE_API_TIMEOUT;
  - TLS verified against requests' CA bundle, and nothing from the environment (trust_env off):
    an HTTPS_PROXY or REQUESTS_CA_BUNDLE in a function's environment must not reroute or
    un-verify signed traffic (it also spares requests' per-call scan of the environment);
  - no cookies kept: every attempt stands alone.

The parameters are encoded once: the body is the spec's parameter string itself
(encode_post_params, the seed's EncodePostParams, without its leading "&"), and MeasureAuth signs
"&" + that body as it is sent, without reading it back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from http.cookiejar import DefaultCookiePolicy

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter

from measure import __version__
from measure.config import Config, check_endpoint
from measure.tune.auth import FORM, Credentials, MeasureAuth
from measure.tune.outcome import Outcome, classify, unreachable
from measure.tune.signing import encode_post_params

# Connect fast or give up (a little over a TCP retransmit window); the API itself may be slow.
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = float(Config.api_timeout)  # MEASURE_API_TIMEOUT's default: measure.config owns it
USER_AGENT = f"measure/{__version__} (+server-to-server)"
# The pools the adapter keeps: one per scheme, host and port, and a client talks to one endpoint.
ENDPOINT_POOLS = 1


class MeasurementClient:
    """Delivers one event's parameters per call; safe to share across an instance's threads.

    `credentials()` gives (consumer key, private key) and is read for every attempt, so a rotated
    secret is picked up; `pool_size` should be the instance's concurrency (functions-framework's
    THREADS): one keep-alive connection per request in flight.
    """

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        pool_size: int = DEFAULT_POOLSIZE,  # requests' own default, when the caller does not say
    ):
        self.endpoint = check_endpoint(endpoint)
        self.timeout = (connect_timeout, read_timeout)
        self.adapter = HTTPAdapter(pool_connections=ENDPOINT_POOLS, pool_maxsize=pool_size, max_retries=0)
        session = requests.Session()
        session.auth = MeasureAuth.reading(credentials)
        session.headers.update({"User-Agent": USER_AGENT, "Content-Type": FORM})  # every call is a form POST
        session.trust_env = False
        session.verify = True
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        for prefix in ("https://", "http://"):  # http:// only ever reaches loopback (check_endpoint)
            session.mount(prefix, self.adapter)
        self.session = session

    def deliver(self, params: Mapping[str, str]) -> Outcome:
        """POST the parameters, signed with a fresh mat-timestamp, and classify the answer."""
        body = encode_post_params(params)[1:]
        started = time.monotonic()
        try:
            response = self.session.post(self.endpoint, data=body, timeout=self.timeout, allow_redirects=False)
        except requests.ConnectTimeout:
            return unreachable("connect timeout", time.monotonic() - started)
        except requests.Timeout:
            return unreachable("timeout", time.monotonic() - started)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            # No whole answer: refused, reset, dropped, cut short, or TLS that does not verify.
            return unreachable(f"connection error: {type(_innermost(exc)).__name__}", time.monotonic() - started)
        return classify(response.status_code, response.headers, response.content, time.monotonic() - started)

    def connection_counts(self) -> tuple[int, int]:
        """(connections opened, requests sent) to the endpoint so far, as the adapter's pool counts
        them; their difference is the number of requests that rode a reused connection."""
        pools = self.adapter.poolmanager.pools  # one per endpoint and TLS settings: here, one
        counted = [pools[key] for key in pools.keys()]
        return sum(pool.num_connections for pool in counted), sum(pool.num_requests for pool in counted)

    def close(self) -> None:
        self.session.close()


def _innermost(exc: BaseException) -> BaseException:
    """The error under requests' and urllib3's wrappers (ConnectionRefusedError,
    SSLCertVerificationError, RemoteDisconnected...): what a log line should name."""
    for _ in range(8):  # the wrappers nest three or four deep; a bound keeps a cycle harmless
        inner = getattr(exc, "reason", None)  # urllib3's MaxRetryError
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in exc.args if isinstance(arg, BaseException)), None)
        inner = inner or exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc
