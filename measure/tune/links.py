"""Encrypted `data` payloads for TUNE click and impression links, and the links themselves.

The seed's PHP makes the payload like this:

    $mcrypt_iv = substr($consumer_key, 0, 16);
    $query_str = http_build_query($params);
    $enc_raw   = mcrypt_encrypt(MCRYPT_RIJNDAEL_128, $private_key, $query_str, 'cbc', $mcrypt_iv);
    $enc_str   = bin2hex($enc_raw);

Rijndael-128 is AES (a 16-byte block; the key length, 16, 24 or 32 bytes, picks AES-128/192/256).
mcrypt pads with NUL bytes up to a multiple of 16 and adds nothing to an input that is already
one, so we pad and strip by hand and give the cipher whole blocks. The plaintext is always
percent-encoded ASCII, so it never ends in a NUL of its own and stripping them is lossless.

The link carries the consumer key in plain text as `ckey` (the server finds the private key by
it) and the payload as `data`; whatever is not encrypted stays in the query string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE = 16
KEY_SIZES = (16, 24, 32)
KINDS = ("click", "impression")
DEFAULT_ENDPOINT_TEMPLATE = "https://{publisher_id}.measure.mobileapptracking.com/serve"
# Set by build_link itself; a caller's params may not carry them.
RESERVED_PARAMS = ("action", "publisher_id", "ckey", "data")

_HEX = re.compile(r"[0-9a-fA-F]*")
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")
# Raw control characters never occur in a query string (they would be percent-encoded); seeing
# one after decryption means the key was wrong, however the bytes happen to split on "=".
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Params = Mapping[str, object] | Iterable[tuple[str, object]]


class LinkError(ValueError):
    """A payload or link that cannot be made or read as asked."""


class PrivateKeyError(LinkError):
    def __init__(self, length: int):
        self.length = length
        # The length only: the key itself must never reach a log.
        super().__init__(f"private key must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256), not {length} bytes")


class ConsumerKeyError(LinkError):
    """The consumer key cannot give the 16-byte IV (its first 16 characters)."""


class InvalidDataError(LinkError):
    """A `data` value that is not hex-encoded whole cipher blocks."""


class DecryptionError(LinkError):
    """Ciphertext that does not decrypt to a query string: most often the wrong private key."""


class InvalidParamsError(LinkError):
    """Parameters that cannot go into a payload or a link."""


class DuplicateParameterError(InvalidParamsError):
    def __init__(self, key: str):
        self.key = key
        super().__init__(f"parameter {key!r} appears more than once; each may appear once")


class InvalidKindError(LinkError):
    def __init__(self, kind: object):
        super().__init__(f"link kind must be 'click' or 'impression', not {kind!r}")


def _key_bytes(private_key: str | bytes) -> bytes:
    key = private_key.encode("utf-8") if isinstance(private_key, str) else bytes(private_key)
    if len(key) not in KEY_SIZES:
        raise PrivateKeyError(len(key))
    return key


def _iv(consumer_key: str | bytes) -> bytes:
    """substr($consumer_key, 0, 16): the first 16 characters, which must be 16 bytes."""
    if len(consumer_key) < BLOCK_SIZE:
        raise ConsumerKeyError(
            f"consumer key must be at least 16 characters (its first 16 are the IV), not {len(consumer_key)}"
        )
    head = consumer_key[:BLOCK_SIZE]
    iv = head.encode("utf-8") if isinstance(head, str) else bytes(head)
    if len(iv) != BLOCK_SIZE:
        raise ConsumerKeyError(
            f"the first 16 characters of the consumer key are the IV and must be 16 bytes, not {len(iv)} "
            "(use ASCII characters)"
        )
    return iv


def _cipher(consumer_key: str | bytes, private_key: str | bytes) -> Cipher[modes.CBC]:
    # The IV is checked first: its errors are the ones that can name the offending value.
    iv = _iv(consumer_key)
    return Cipher(algorithms.AES(_key_bytes(private_key)), modes.CBC(iv))


def _pairs(params: Params) -> list[tuple[str, str]]:
    """Params as (name, text) pairs in the given order; one value per name, no empty names."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in items:
        try:
            key, value = item
        except (TypeError, ValueError):
            raise InvalidParamsError(f"parameters must be (name, value) pairs, not {item!r}") from None
        if not isinstance(key, str) or not key:
            raise InvalidParamsError(f"parameter names must be non-empty strings, not {key!r}")
        if key in seen:
            raise DuplicateParameterError(key)
        seen.add(key)
        # bool is an int, but PHP would write "1" where a reader expects "true": refuse it.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidParamsError(f"parameter {key!r} must be a string or a number, not {type(value).__name__}")
        pairs.append((key, value if isinstance(value, str) else str(value)))
    return pairs


def build_query(params: Params) -> str:
    """PHP's http_build_query of flat params: given order, keys and values urlencoded, space as "+"."""
    pairs = _pairs(params)
    if not pairs:
        raise InvalidParamsError("no parameters to encrypt; give at least one")
    return urlencode(pairs)


def zero_pad(data: bytes) -> bytes:
    """mcrypt's padding: NULs up to a multiple of the block; nothing if already one."""
    return data + b"\0" * (-len(data) % BLOCK_SIZE)


def encrypt_data(consumer_key: str | bytes, private_key: str | bytes, params: Params) -> str:
    """The `data` value for params: lowercase hex of AES-CBC(zero-padded http_build_query)."""
    encryptor = _cipher(consumer_key, private_key).encryptor()
    plaintext = zero_pad(build_query(params).encode("ascii"))
    return (encryptor.update(plaintext) + encryptor.finalize()).hex()


def _ciphertext(data: str) -> bytes:
    # Checked by hand: bytes.fromhex would also accept whitespace and give vaguer messages.
    if not data:
        raise InvalidDataError("data is empty; it must be the hex of at least one 16-byte block")
    if not _HEX.fullmatch(data):
        bad = _NOT_HEX.search(data)
        assert bad is not None
        raise InvalidDataError(f"data must be hex digits; found {bad.group()!r} at position {bad.start()}")
    if len(data) % 2:
        raise InvalidDataError(f"data must have an even number of hex digits, not {len(data)}")
    if len(data) % (2 * BLOCK_SIZE):
        raise InvalidDataError(
            f"data must be whole 16-byte blocks (a multiple of 32 hex digits), not {len(data) // 2} bytes"
        )
    return bytes.fromhex(data)


def decrypt_data(consumer_key: str | bytes, private_key: str | bytes, data: str) -> dict[str, str]:
    """The params inside a `data` value, as a dict in payload order."""
    decryptor = _cipher(consumer_key, private_key).decryptor()
    padded = decryptor.update(_ciphertext(data)) + decryptor.finalize()
    wrong_key = "data does not decrypt to a query string; is the private key (or consumer key) the right one?"
    try:
        text = padded.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError(f"{wrong_key} (not UTF-8)") from None
    if not text:
        raise DecryptionError(f"{wrong_key} (nothing but padding)")
    if _CONTROL.search(text):
        raise DecryptionError(f"{wrong_key} (control characters)")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise DecryptionError(f"{wrong_key} (not name=value pairs)") from None
    result: dict[str, str] = {}
    for key, value in pairs:
        if not key:
            raise DecryptionError(f"{wrong_key} (a parameter without a name)")
        if key in result:
            raise DuplicateParameterError(key)
        result[key] = value
    return result


def build_link(
    kind: str,
    publisher_id: str | int,
    params: Params,
    *,
    encrypt: Iterable[str] = (),
    consumer_key: str | bytes | None = None,
    private_key: str | bytes | None = None,
    endpoint_template: str = DEFAULT_ENDPOINT_TEMPLATE,
) -> str:
    """A click or impression link: action, publisher_id and the plain params in order, then
    ckey and data when `encrypt` names params (publisher_id may be one) to hide in the payload.
    """
    if kind not in KINDS:
        raise InvalidKindError(kind)
    # The id becomes part of the host name, so only a plain number is allowed.
    publisher = str(publisher_id)
    if isinstance(publisher_id, bool) or not (publisher.isascii() and publisher.isdigit()):
        raise InvalidParamsError(f"publisher_id must be a number, not {publisher_id!r}")
    pairs = _pairs(params)
    for key, _ in pairs:
        if key in RESERVED_PARAMS:
            raise InvalidParamsError(f"parameter {key!r} is set by the link builder; leave it out of params")
    pairs.insert(0, ("publisher_id", publisher))

    hidden = list(dict.fromkeys([encrypt] if isinstance(encrypt, str) else encrypt))
    unknown = [name for name in hidden if name not in dict(pairs)]
    if unknown:
        raise InvalidParamsError(f"cannot encrypt {', '.join(map(repr, unknown))}: not among the link's params")
    query = [("action", kind), *(pair for pair in pairs if pair[0] not in hidden)]
    if hidden:
        if consumer_key is None or private_key is None:
            raise InvalidParamsError("encrypting params needs both consumer_key and private_key")
        secret = [pair for pair in pairs if pair[0] in hidden]
        data = encrypt_data(consumer_key, private_key, secret)
        ckey = consumer_key.decode("utf-8") if isinstance(consumer_key, bytes) else consumer_key
        query += [("ckey", ckey), ("data", data)]
    return f"{endpoint_template.format(publisher_id=publisher)}?{urlencode(query)}"
