"""`MeasureAuth`: Measurement API signing as a `requests` auth (`requests.auth.AuthBase`).

    session.post(url, data=params, auth=MeasureAuth(consumer_key, private_key))

The Measurement API client (measure.tune.client) sets it as its Session's auth, so every request
that leaves this package is signed here, by `measure.tune.signing.generate_signature`. It lives
apart from measure.tune.signing so that signing alone does not import requests (the sandbox's
verifier and the command line's `sign` need only the steps); the public name is
`measure.signing.MeasureAuth`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from requests import PreparedRequest
from requests.auth import AuthBase

from measure.tune.signing import (
    InvalidMethodError,
    PostParamsOnGetError,
    SigningError,
    generate_signature,
    request_target,
    signed_form,
    signing_headers,
)

Credentials = Callable[[], tuple[str, str]]  # () -> (consumer_key, private_key)
FORM = "application/x-www-form-urlencoded"


class MeasureAuth(AuthBase):
    """Signs a prepared GET or form POST with a fresh mat-timestamp:

        session.post(url, data=params, auth=MeasureAuth(consumer_key, private_key))

    What is signed is the prepared request itself: its URL, and its form body as it is sent
    ("&" + the body, measure.tune.signing.signed_form), never decoded and encoded again. One signer
    for MeasurementClient, whose body is encode_post_params' already, and for a Session posting a
    dict, whose pairs are put in the spec's order first.
    """

    def __init__(self, consumer_key: str, private_key: str, clock: Callable[[], float] = time.time):
        self._credentials: Credentials = lambda: (consumer_key, private_key)
        self.clock = clock

    @classmethod
    def reading(cls, credentials: Credentials, clock: Callable[[], float] = time.time) -> MeasureAuth:
        """Keys read afresh for every request: `credentials()` gives (consumer key, private key),
        e.g. Secret Manager behind its TTL cache, so a rotated key is picked up without a restart."""
        return _Reading(credentials, clock)

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        host, uri = request_target(request.url or "")  # always set once prepared
        if request.method == "GET":
            if request.body:
                raise PostParamsOnGetError()
            post_params = ""
        elif request.method == "POST":
            content_type = request.headers.get("Content-Type", "")
            if request.body and not content_type.startswith(FORM):
                raise SigningError(f"a signed POST must be form-encoded, not {content_type or 'unknown content'}")
            sent = _text(request.body)
            body, post_params = signed_form(sent)
            if body is not sent:  # a dict's pairs, put in the spec's order: the body is what is signed
                request.prepare_body(body, None)
        else:
            raise InvalidMethodError(request.method or "")
        consumer_key, private_key = self._credentials()
        timestamp = str(int(self.clock()))
        signature = generate_signature(private_key, request.method, host, uri, timestamp, post_params)
        request.headers.update(signing_headers(consumer_key, signature, timestamp))
        return request

    def __repr__(self) -> str:  # never show the keys
        return "MeasureAuth(<keys hidden>)"


class _Reading(MeasureAuth):
    """MeasureAuth.reading's: the same signing, the keys asked of `credentials` for each request."""

    def __init__(self, credentials: Credentials, clock: Callable[[], float] = time.time):
        self._credentials = credentials
        self.clock = clock


def _text(body: bytes | str | None) -> str:
    """A prepared form body as text: requests keeps a str as given and encodes a dict to a str."""
    if isinstance(body, bytes):
        try:
            return body.decode("ascii")
        except UnicodeDecodeError:
            raise SigningError("a form body is ASCII once url-encoded; this one is not") from None
    return body or ""
