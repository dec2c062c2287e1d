"""Who the functions are to Google, and the one connection pool their Google REST calls share.

google-auth does all of it: `google.auth.default()` finds the credentials (the metadata server's
service account on Google Cloud, Application Default Credentials elsewhere: a developer's
`gcloud auth application-default login`, a key file), and `AuthorizedHttp` (google-auth's
transport over urllib3) adds the token to each call, refreshes it before it expires (3 min 45 s
before: the metadata server hands out its cached token until 5 min before, so refreshing at
5 min would fetch on every call) and once more on a 401. With PUBSUB_EMULATOR_HOST set, as the
client libraries define it, Pub/Sub calls go to the emulator with no credentials at all.

Why urllib3 and not requests' AuthorizedSession: a Publish call is most of receive's CPU, and
requests' Session.request costs about twice urllib3's urlopen for the same call (environment and
proxy look-ups, hooks, cookies, a prepared copy of every request; benchmarks/publish_call.py
measures the four stacks side by side). urllib3 is what requests itself runs on, and google-auth
ships the authorizing wrapper for it; nothing here reads proxy or netrc settings from the
environment, so a stray HTTPS_PROXY cannot reroute a publish.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import certifi
import urllib3

if TYPE_CHECKING:  # google.auth is imported when credentials are first needed, not at start
    from google.auth.credentials import Credentials
    from google.auth.transport.urllib3 import AuthorizedHttp

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PUBSUB_URL = "https://pubsub.googleapis.com"


def pubsub_url() -> str:
    """Where Pub/Sub calls go: the emulator when PUBSUB_EMULATOR_HOST is set (plain http), else the service."""
    emulator = emulator_host()
    return f"http://{emulator}" if emulator else PUBSUB_URL


def emulator_host() -> str | None:
    return os.environ.get("PUBSUB_EMULATOR_HOST") or None


def default_credentials() -> Credentials:
    """google.auth.default() for the cloud-platform scope, refreshed in the background when near expiry.

    With non-blocking refresh, a token inside google-auth's refresh window is renewed by one
    background thread while calls go on with the still-valid one, so an instance's threads never
    queue up behind (or each make) the same fetch. It is fetched once here, while the instance
    builds its shared objects, so concurrent first requests find it valid."""
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.urllib3

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    credentials.with_non_blocking_refresh()
    try:
        credentials.refresh(google.auth.transport.urllib3.Request(_pool(1)))
    except google.auth.exceptions.RefreshError:
        pass  # not fatal here: the first call refreshes again, and that call's retries apply
    return credentials


class _SharedPool(urllib3.PoolManager):
    """A PoolManager that deep-copies as itself. google-auth's background refresh hands its thread
    a deep copy of the transport's Request (so the thread shares nothing mutable), and a
    PoolManager's locks cannot be copied (TypeError: cannot pickle '_thread.RLock'). A pool is
    made to be shared by threads, so the refresh thread uses the instance's own."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedPool:
        return self


def _pool(pool_size: int) -> urllib3.PoolManager:
    # retries=False: urllib3 raises the failure itself; measure.gcp.googleapi decides what is retried,
    # within a deadline. certifi's CA bundle, as requests uses, whatever the image's own store holds.
    return _SharedPool(num_pools=4, maxsize=max(1, pool_size), retries=False,
                       cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())


def http(credentials: Credentials | None, pool_size: int) -> AuthorizedHttp:
    """A connection pool keeping `pool_size` connections a host, one for each of the instance's
    threads, under google-auth's AuthorizedHttp over `credentials`. None: anonymous credentials,
    which add nothing to a call (the emulator, a local stand-in), so every caller goes through the
    same transport as on Google Cloud."""
    import google.auth.credentials
    import google.auth.transport.urllib3

    return google.auth.transport.urllib3.AuthorizedHttp(
        credentials or google.auth.credentials.AnonymousCredentials(), http=_pool(pool_size))


def close(made: AuthorizedHttp) -> None:
    """Close the pool's connections (a command-line run that is done with them)."""
    made.http.clear()


def pubsub_http(pool_size: int) -> AuthorizedHttp:
    """The pool for Pub/Sub: no credentials on the emulator, elsewhere google.auth.default()'s."""
    return http(None if emulator_host() else default_credentials(), pool_size)
