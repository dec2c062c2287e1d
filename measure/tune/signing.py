"""Measurement API request signing, step by step as TUNE's spec names the steps.

    string to sign = METHOD "\\n" host "\\n" uri "\\n" timestamp "\\n" post_params
    signature      = base64url(HMAC-SHA256(private key, string to sign)), "=" padding stripped
    headers        = mat-consumer-key, mat-signature, mat-timestamp

`post_params` is `encode_post_params(params)` for a POST ("&k=v" per pair, keys sorted, values
escaped like Go's url.QueryEscape) and "" for a GET. The seed's Go `GenerateSignature` and
`EncodePostParams` are the reference; the three truth vectors in the tests pin us to them byte
for byte.

Each step is a function of its own, named as the seed names it, so it can be tested alone:
encode_post_params -> string_to_sign -> sign, composed by generate_signature. `MeasureAuth`
(measure.tune.auth) plugs generate_signature into a `requests` Session and signs a form body as
it is sent (`signed_form`: "&" + the body, never decoded and encoded again), and
`verify_signature` is the receiving side (the sandbox uses it). This module imports nothing of ours and not
requests, so the auth can import it without a cycle.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote_plus, urlsplit

METHODS = ("GET", "POST")
HEADER_CONSUMER_KEY = "mat-consumer-key"
HEADER_SIGNATURE = "mat-signature"
HEADER_TIMESTAMP = "mat-timestamp"
# How far a request's mat-timestamp may stray from the verifier's clock, either way.
DEFAULT_TOLERANCE = 300
# Private keys whose HMAC state is kept: the current one and the one a rotation replaced, with room.
KEYED_STATES = 8
_BLOCK = hashlib.sha256().block_size  # 64 bytes
# RFC 2104's pads as translation tables: each byte of the padded key XOR 0x36 (inner), 0x5C (outer).
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class SigningError(ValueError):
    """A request that cannot be signed as asked."""


class InvalidMethodError(SigningError):
    def __init__(self, method: str):
        super().__init__(f"http method must be GET or POST, not {method!r}")


class MultiValuedParameterError(SigningError):
    def __init__(self, key: str, count: int):
        self.key = key
        super().__init__(f"POST parameter {key!r} has {count} values; each may have exactly one")


class PostParamsOnGetError(SigningError):
    def __init__(self) -> None:
        super().__init__("a GET request carries no POST parameters; put them in the query string")


class SignatureVerificationError(ValueError):
    """A signature that does not verify; `reason` says why in a few words."""

    reason = "invalid signature"

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)


class MissingHeaderError(SignatureVerificationError):
    reason = "missing header"


class InvalidTimestampError(SignatureVerificationError):
    reason = "invalid timestamp"


class StaleTimestampError(SignatureVerificationError):
    reason = "timestamp outside tolerance"


class SignatureMismatchError(SignatureVerificationError):
    reason = "signature mismatch"


def _single_values(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> dict[str, str]:
    """One string per key. Sequences of one value (parse_qs style) are unwrapped; a repeated
    key or a longer sequence is refused, as the Go reference refuses multi-valued url.Values."""
    pairs = params.items() if isinstance(params, Mapping) else params
    single: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise MultiValuedParameterError(key, len(value))
            (value,) = value
        if key in single:  # the first repeat is refused: the key has two values
            raise MultiValuedParameterError(key, 2)
        if value is None or isinstance(value, bool):
            raise SigningError(f"POST parameter {key!r} must be a string or a number, not {value!r}")
        single[key] = value if isinstance(value, str) else str(value)
    return single


def encode_post_params(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """The sorted, url-encoded parameter string that is signed for a POST.

    As Go's EncodePostParams: "&key=value" for every key in byte order (UTF-8 byte order equals
    code point order, which is how Python sorts str), keys written as they are, values escaped
    like url.QueryEscape (quote_plus with nothing safe: space becomes "+", "~" stays).
    """
    single = _single_values(params)
    return "".join(f"&{key}={quote_plus(single[key], safe='')}" for key in sorted(single))


def string_to_sign(http_method: str, http_host: str, uri: str, timestamp: str | int, post_params: str = "") -> str:
    """Method, host, uri, timestamp and the POST parameter string, joined by newlines."""
    if http_method not in METHODS:
        raise InvalidMethodError(http_method)
    return f"{http_method}\n{http_host}\n{uri}\n{timestamp}\n{post_params}"


@functools.lru_cache(maxsize=KEYED_STATES)
def keyed_state(private_key: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256's keyed state for one key: the inner and outer SHA-256 after absorbing the key's
    padded blocks (RFC 2104: H(K ^ opad || H(K ^ ipad || text))), computed once per key.

    Every signature under a key starts from these two states, so `sign` copies them instead of
    hashing the key's two blocks again (a third of signing a short request). They are hashlib's
    own objects, copied in C: hmac.HMAC's copy() is the same state behind a Python wrapper whose
    frames cost as much as the hashing (1.15x Go's GenerateSignature with it, 0.9x without, in
    benchmarks/signing.py's paired runs). A rotated key is a new entry; the least recently used
    beyond KEYED_STATES is dropped. tests/tune/test_signing.py checks `sign` against the standard
    library's hmac.digest for keys of every length around the block size.
    """
    key = private_key.encode()
    if len(key) > _BLOCK:  # RFC 2104: a key longer than the block is hashed first
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_INNER_PAD)), hashlib.sha256(key.translate(_OUTER_PAD))


def sign(private_key: str, to_sign: str) -> str:
    """HMAC-SHA256 of the string to sign, base64url without the "=" padding (the seed's last step)."""
    inner_state, outer_state = keyed_state(private_key)
    inner = inner_state.copy()  # copies: the kept states are never updated
    inner.update(to_sign.encode())
    outer = outer_state.copy()
    outer.update(inner.digest())
    return base64.urlsafe_b64encode(outer.digest()).rstrip(b"=").decode()


def generate_signature(
    private_key: str,
    http_method: str,
    http_host: str,
    uri: str,
    timestamp: str | int,
    post_params: str = "",
) -> str:
    """The seed's GenerateSignature: the signature of one request, `sign` of its `string_to_sign`.

    The one signing function: `MeasureAuth` (and so the client) signs with it, and
    `verify_signature` computes the expected signature with it.
    """
    return sign(private_key, string_to_sign(http_method, http_host, uri, timestamp, post_params))


def signing_headers(consumer_key: str, signature: str, timestamp: str | int) -> dict[str, str]:
    """The three headers that carry the signature (the seed's addMatHeaders)."""
    return {
        HEADER_CONSUMER_KEY: consumer_key,
        HEADER_SIGNATURE: signature,
        HEADER_TIMESTAMP: str(timestamp),
    }


def request_target(url: str) -> tuple[str, str]:
    """(host, uri) of a URL as Go's req.URL.Host and req.URL.RequestURI() give them."""
    parts = urlsplit(url)
    uri = parts.path or "/"
    if parts.query:
        uri = f"{uri}?{parts.query}"
    return parts.netloc, uri


def signed_form(body: str) -> tuple[str, str]:
    """(body to send, post_params to sign) of a url-encoded form body, the second "&" + the first.

    The body is signed as it is sent, never decoded and encoded again: encode_post_params(params)[1:]
    (what MeasurementClient sends) comes back unchanged, and so does requests' encoding of a dict
    sorted by key (urlencode escapes values as url.QueryEscape does). Pairs in another order (a
    dict in insertion order) are put in the spec's order, key by key as they were encoded, so the
    API, which sorts what it receives, computes the same string; empty pairs ("&&") are dropped,
    as the API drops them. A key given twice is refused, as encode_post_params refuses it. A body
    already in order is returned as the same object.
    """
    if not body:
        return body, ""
    pairs = body.split("&")
    if "" in pairs:  # "a=1&&b=2" or a trailing "&": no pair there, as the API reads it
        pairs = [pair for pair in pairs if pair]
        body = "&".join(pairs)
    keys = [pair.partition("=")[0] for pair in pairs]
    if keys != sorted(keys):
        order = sorted(range(len(pairs)), key=keys.__getitem__)
        pairs, keys = [pairs[i] for i in order], [keys[i] for i in order]
        body = "&".join(pairs)
    for before, key in itertools.pairwise(keys):
        if before == key:
            raise MultiValuedParameterError(key, 2)
    return body, "&" + body if body else ""


def verify_signature(
    private_key: str,
    http_method: str,
    http_host: str,
    uri: str,
    timestamp: str | None,
    signature: str | None,
    post_params: str = "",
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a received request's signature; raise a SignatureVerificationError naming why.

    The timestamp must be whole Unix seconds within `tolerance` of `now`; the signature is
    compared in constant time.
    """
    if not timestamp:
        raise MissingHeaderError(HEADER_TIMESTAMP)
    if not signature:
        raise MissingHeaderError(HEADER_SIGNATURE)
    if not timestamp.isascii() or not timestamp.isdigit():
        raise InvalidTimestampError(f"{timestamp!r} is not whole Unix seconds")
    skew = int(timestamp) - (time.time() if now is None else now)
    if abs(skew) > tolerance:
        raise StaleTimestampError(f"{skew:+.0f} s from now, tolerance {tolerance:g} s")
    expected = generate_signature(private_key, http_method, http_host, uri, timestamp, post_params)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SignatureMismatchError("the signature does not match the request and key")

