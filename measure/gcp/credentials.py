"""Who the functions are to Google, and the one HTTP session their Google REST calls share.

google-auth does all of it: `google.auth.default()` finds the credentials (the metadata server's
service account on Google Cloud, Application Default Credentials elsewhere: a developer's
`gcloud auth application-default login`, a key file), and `AuthorizedSession` adds the token to
each call, refreshes it before it expires (3 min 45 s before: the metadata server hands out its
cached token until 5 min before, so refreshing at 5 min would fetch on every call) and once more
on a 401. With PUBSUB_EMULATOR_HOST set, as the client libraries define it, Pub/Sub calls go to the
emulator with no credentials at all.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import requests
import requests.adapters

if TYPE_CHECKING:  # google.auth is imported when credentials are first needed, not at start
    from google.auth.credentials import Credentials

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
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    credentials.with_non_blocking_refresh()
    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.RefreshError:
        pass  # not fatal here: the first call refreshes again, and that call's retries apply
    return credentials


def session(credentials: Credentials | None, pool_size: int) -> requests.Session:
    """An AuthorizedSession over `credentials` (None: a plain session, for the emulator) whose
    connection pool keeps `pool_size` connections a host, one for each of the instance's threads.
    No adapter retries: measure.gcp.googleapi decides what is retried, within a deadline."""
    if credentials is None:
        made = requests.Session()
    else:
        import google.auth.transport.requests

        made = google.auth.transport.requests.AuthorizedSession(credentials)
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    made.mount("https://", adapter)
    made.mount("http://", adapter)
    return made


def pubsub_session(pool_size: int) -> requests.Session:
    """The session for Pub/Sub: no credentials on the emulator, elsewhere google.auth.default()'s."""
    return session(None if emulator_host() else default_credentials(), pool_size)
