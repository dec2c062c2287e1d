"""measure.tune.links: cross-checked against `openssl enc`, round-tripped, and every refusal."""

from __future__ import annotations

import subprocess
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from measure.tune.links import (
    ConsumerKeyError,
    DecryptionError,
    DuplicateParameterError,
    InvalidDataError,
    InvalidKindError,
    InvalidParamsError,
    LinkError,
    PrivateKeyError,
    build_link,
    build_query,
    decrypt_data,
    encrypt_data,
    zero_pad,
)

OPENSSL = "/usr/bin/openssl"
SEED_CKEY = "STRING32CHARACTERS11223344556677"
SEED_PARAMS = {"cost": 0.01, "cost_model": "cpc"}
SEED_DATA = "71b85c10d2427146dc24007c610ea647823465febf2447560d6fc02a33bd0207"
KEYS = {16: b"k" * 16, 24: bytes(range(24)), 32: b"x" * 32}
IV = SEED_CKEY[:16].encode()


def openssl(key: bytes, plaintext: bytes, *, decrypt: bool = False) -> bytes:
    """AES-CBC without padding by the openssl command line: an implementation not ours."""
    args = [OPENSSL, "enc", f"-aes-{len(key) * 8}-cbc", "-K", key.hex(), "-iv", IV.hex(), "-nopad"]
    if decrypt:
        args.append("-d")
    return subprocess.run(args, input=plaintext, capture_output=True, check=True).stdout


PARAM_SETS = [
    pytest.param(SEED_PARAMS, id="seed"),
    pytest.param({"abcdefgh": "1234567"}, id="exactly-one-block"),
    pytest.param([("name", "Zoë & Łukasz"), ("q", "a=b+c d"), ("empty", "")], id="unicode-and-specials"),
    pytest.param({f"k{i}": "v" * i for i in range(12)}, id="many-blocks"),
]


# --- cross-check with openssl --------------------------------------------------------------------


@pytest.mark.parametrize("size", sorted(KEYS))
@pytest.mark.parametrize("params", PARAM_SETS)
def test_encrypt_matches_openssl(size, params):
    key = KEYS[size]
    expected = openssl(key, zero_pad(build_query(params).encode()))
    assert encrypt_data(SEED_CKEY, key, params) == expected.hex()


@pytest.mark.parametrize("size", sorted(KEYS))
@pytest.mark.parametrize("params", PARAM_SETS)
def test_decrypt_reads_openssl_ciphertext(size, params):
    key = KEYS[size]
    data = openssl(key, zero_pad(build_query(params).encode())).hex()
    pairs = params.items() if isinstance(params, dict) else params
    assert decrypt_data(SEED_CKEY, key, data) == {k: str(v) for k, v in pairs}


@pytest.mark.parametrize("size", sorted(KEYS))
def test_openssl_decrypts_our_ciphertext(size):
    key = KEYS[size]
    data = encrypt_data(SEED_CKEY, key, SEED_PARAMS)
    assert openssl(key, bytes.fromhex(data), decrypt=True).rstrip(b"\0") == b"cost=0.01&cost_model=cpc"


# --- the seed and the payload format -------------------------------------------------------------


def test_seed_example_plaintext_and_size():
    # The seed's published data was made with a private key it does not show, so we check what
    # can be checked: the same plaintext, and a ciphertext of the same two-block length.
    assert build_query(SEED_PARAMS) == "cost=0.01&cost_model=cpc"
    data = encrypt_data(SEED_CKEY, "x" * 32, SEED_PARAMS)
    assert len(data) == len(SEED_DATA) == 64
    assert data == data.lower()
    assert decrypt_data(SEED_CKEY, "x" * 32, data) == {"cost": "0.01", "cost_model": "cpc"}


def test_query_is_http_build_query_style():
    assert build_query({"a b": "c d", "plus": "1+1", "amp": "x&y=z", "e": ""}) == (
        "a+b=c+d&plus=1%2B1&amp=x%26y%3Dz&e="
    )
    assert build_query([("z", 1), ("a", 2)]) == "z=1&a=2"  # given order, not sorted


def test_zero_padding_is_mcrypt_style():
    assert zero_pad(b"") == b""
    assert zero_pad(b"a") == b"a" + b"\0" * 15
    assert zero_pad(b"a" * 16) == b"a" * 16  # no extra block
    assert len(encrypt_data(SEED_CKEY, KEYS[16], {"abcdefgh": "1234567"})) == 32


def test_iv_is_first_16_characters_of_consumer_key():
    # Keys that differ only after character 16 share the IV and so the ciphertext.
    assert encrypt_data(SEED_CKEY, KEYS[16], SEED_PARAMS) == encrypt_data(SEED_CKEY[:16], KEYS[16], SEED_PARAMS)
    assert encrypt_data(SEED_CKEY, KEYS[16], SEED_PARAMS) != encrypt_data("X" + SEED_CKEY[1:], KEYS[16], SEED_PARAMS)


def test_string_and_bytes_keys_agree():
    assert encrypt_data(SEED_CKEY, "x" * 32, SEED_PARAMS) == encrypt_data(SEED_CKEY.encode(), b"x" * 32, SEED_PARAMS)
    # Key length is counted in UTF-8 bytes: eight two-byte characters are an AES-128 key.
    assert decrypt_data(SEED_CKEY, "é" * 8, encrypt_data(SEED_CKEY, "é" * 8, SEED_PARAMS))


def test_decrypt_accepts_uppercase_hex():
    data = encrypt_data(SEED_CKEY, KEYS[16], SEED_PARAMS)
    assert decrypt_data(SEED_CKEY, KEYS[16], data.upper()) == {"cost": "0.01", "cost_model": "cpc"}


# --- round trips ---------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12) | st.sampled_from(["a b", "&", "=", "+", "k=v&x", "%41"])
values = st.text(max_size=40) | st.sampled_from(["", " ", "&", "=", "+", "a+b c", "%00", "\0"])


@settings(max_examples=150, deadline=None)
@given(
    params=st.dictionaries(names, values, min_size=1, max_size=6),
    private_key=st.sampled_from([KEYS[n] for n in sorted(KEYS)]),
    consumer_key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=16, max_size=40),
)
def test_round_trip(params, private_key, consumer_key):
    data = encrypt_data(consumer_key, private_key, params)
    assert len(data) % 32 == 0 and data == data.lower()
    assert list(decrypt_data(consumer_key, private_key, data).items()) == list(params.items())


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(names, st.integers() | st.floats(allow_nan=False)), min_size=1, max_size=4, unique_by=lambda p: p[0]
    )
)
def test_round_trip_numbers_come_back_as_text(pairs):
    data = encrypt_data(SEED_CKEY, KEYS[32], pairs)
    assert decrypt_data(SEED_CKEY, KEYS[32], data) == {k: str(v) for k, v in pairs}


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 15, 17, 23, 31, 33, 64])
def test_private_key_of_wrong_length(length):
    key = ("Z9" * 32)[:length]  # letters the message itself never uses
    for call in (lambda: encrypt_data(SEED_CKEY, key, SEED_PARAMS), lambda: decrypt_data(SEED_CKEY, key, "00" * 16)):
        with pytest.raises(PrivateKeyError) as info:
            call()
        message = str(info.value)
        assert "16, 24 or 32 bytes" in message and f"not {length} bytes" in message
        if length:
            assert key not in message  # never show the key


def test_private_key_error_counts_bytes():
    # 17 characters, 18 UTF-8 bytes: the message speaks of bytes, as AES does.
    with pytest.raises(PrivateKeyError, match="not 18 bytes"):
        encrypt_data(SEED_CKEY, "é" + "a" * 16, {"a": "b"})


def test_consumer_key_too_short():
    with pytest.raises(ConsumerKeyError, match=r"at least 16 characters.*not 15"):
        encrypt_data("S" * 15, KEYS[16], SEED_PARAMS)
    with pytest.raises(ConsumerKeyError):
        decrypt_data("", KEYS[16], "00" * 16)


def test_consumer_key_whose_iv_is_not_16_bytes():
    with pytest.raises(ConsumerKeyError, match="must be 16 bytes, not 17"):
        encrypt_data("é" + "S" * 31, KEYS[16], SEED_PARAMS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "empty"),
        ("zz" * 16, "hex digits; found 'z' at position 0"),
        ("00" * 15 + " 0", "found ' ' at position 30"),
        ("0x" + "00" * 16, "found 'x' at position 1"),
        ("0" * 33, "even number of hex digits, not 33"),
        ("00" * 15, "whole 16-byte blocks .* not 15 bytes"),
        ("00" * 17, "not 17 bytes"),
    ],
)
def test_malformed_data(data, message):
    with pytest.raises(InvalidDataError, match=message):
        decrypt_data(SEED_CKEY, KEYS[16], data)


@pytest.mark.parametrize("wrong", [b"y" * 32, b"x" * 31 + b"y", bytes(32), b"z" * 16, b"q" * 24])
def test_wrong_private_key(wrong):
    data = encrypt_data(SEED_CKEY, KEYS[32], {"cost": "0.01", "cost_model": "cpc", "site_id": "2962"})
    with pytest.raises(DecryptionError, match="private key"):
        decrypt_data(SEED_CKEY, wrong, data)


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [
        (b"", "nothing but padding"),
        (b"just text", "not name=value pairs"),
        (b"=value", "without a name"),
        (b"a=%ff", "not name=value pairs"),
        (b"a=\x01", "control characters"),
        (b"\xff\xfe=1", "not UTF-8"),
    ],
)
def test_plaintext_that_is_not_a_query_string(plaintext, reason):
    data = openssl(KEYS[16], zero_pad(plaintext) or bytes(16)).hex()
    with pytest.raises(DecryptionError, match=reason):
        decrypt_data(SEED_CKEY, KEYS[16], data)


def test_duplicate_keys_refused_both_ways():
    data = openssl(KEYS[16], zero_pad(b"cost=1&cost=2")).hex()
    with pytest.raises(DuplicateParameterError, match="'cost' appears more than once"):
        decrypt_data(SEED_CKEY, KEYS[16], data)
    with pytest.raises(DuplicateParameterError, match="'cost'"):
        encrypt_data(SEED_CKEY, KEYS[16], [("cost", "1"), ("cost", "2")])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "no parameters"),
        ([], "no parameters"),
        ({"": "x"}, "non-empty strings"),
        ({"a": None}, "'a' must be a string or a number, not NoneType"),
        ({"a": True}, "not bool"),
        ({"a": ["1"]}, "not list"),
        ([("a", "1", "2")], "pairs"),
    ],
)
def test_bad_params(params, message):
    with pytest.raises(InvalidParamsError, match=message):
        encrypt_data(SEED_CKEY, KEYS[16], params)


def test_errors_are_value_errors():
    for error in (PrivateKeyError, ConsumerKeyError, InvalidDataError, DecryptionError, InvalidKindError):
        assert issubclass(error, LinkError) and issubclass(error, ValueError)
    assert issubclass(DuplicateParameterError, InvalidParamsError)


# --- links ---------------------------------------------------------------------------------------

SEED_LINK_PARAMS = [
    ("site_id", "2962"),
    ("ios_ifa", "AAAAAA-BBBB-CCCC-11111-2222222222222"),
    ("cost_model", "cpc"),
    ("cost", "0.01"),
]


def parse(url):
    parts = urlsplit(url)
    return parts, parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)


def test_click_link_like_the_seed():
    url = build_link(
        "click",
        19228,
        SEED_LINK_PARAMS,
        encrypt=["cost_model", "cost"],
        consumer_key=SEED_CKEY,
        private_key=KEYS[32],
    )
    parts, query = parse(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "19228.measure.mobileapptracking.com", "/serve")
    assert [k for k, _ in query] == ["action", "publisher_id", "site_id", "ios_ifa", "ckey", "data"]
    fields = dict(query)
    assert fields["action"] == "click" and fields["publisher_id"] == "19228" and fields["ckey"] == SEED_CKEY
    assert "cost" not in fields and "cost_model" not in fields and "0.01" not in url and "cpc" not in url
    assert decrypt_data(fields["ckey"], KEYS[32], fields["data"]) == {"cost_model": "cpc", "cost": "0.01"}


def test_impression_link_everything_encrypted():
    url = build_link(
        "impression",
        "19228",
        SEED_LINK_PARAMS,
        encrypt=["publisher_id", *(k for k, _ in SEED_LINK_PARAMS)],
        consumer_key=SEED_CKEY,
        private_key=KEYS[16],
    )
    parts, query = parse(url)
    assert parts.netloc.startswith("19228.")
    assert [k for k, _ in query] == ["action", "ckey", "data"]
    assert dict(query)["action"] == "impression"
    assert decrypt_data(SEED_CKEY, KEYS[16], dict(query)["data"]) == {"publisher_id": "19228", **dict(SEED_LINK_PARAMS)}


def test_plain_link_needs_no_keys_and_encodes_values():
    url = build_link(
        "click", 7, {"site_id": 2962, "sub": "a b&c"}, endpoint_template="http://localhost:8080/{publisher_id}/serve"
    )
    parts, query = parse(url)
    assert (parts.netloc, parts.path) == ("localhost:8080", "/7/serve")
    assert query == [("action", "click"), ("publisher_id", "7"), ("site_id", "2962"), ("sub", "a b&c")]


@pytest.mark.parametrize("kind", ["Click", "install", "", None])
def test_link_kind_must_be_click_or_impression(kind):
    with pytest.raises(InvalidKindError, match="'click' or 'impression'"):
        build_link(kind, 1, {"site_id": "1"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"publisher_id": "19228.evil.example"}, "publisher_id must be a number"),
        ({"publisher_id": ""}, "publisher_id must be a number"),
        ({"publisher_id": True}, "publisher_id must be a number"),
        ({"params": {"action": "install"}}, "'action' is set by the link builder"),
        ({"params": {"ckey": "x"}}, "'ckey' is set by the link builder"),
        ({"params": {"publisher_id": "1"}}, "'publisher_id' is set by the link builder"),
        ({"encrypt": ["nope"]}, "cannot encrypt 'nope'"),
        ({"encrypt": ["cost"], "private_key": None}, "needs both consumer_key and private_key"),
        ({"params": [("site_id", "1"), ("site_id", "2")]}, "'site_id' appears more than once"),
    ],
)
def test_link_refusals(kwargs, message):
    args = {
        "kind": "click",
        "publisher_id": 19228,
        "params": {"site_id": "2962", "cost": "0.01"},
        "consumer_key": SEED_CKEY,
        "private_key": KEYS[16],
    } | kwargs
    with pytest.raises(InvalidParamsError, match=message):
        build_link(**args)


def test_link_passes_key_errors_through():
    with pytest.raises(PrivateKeyError):
        build_link("click", 1, {"cost": "1"}, encrypt=["cost"], consumer_key=SEED_CKEY, private_key="short")
    with pytest.raises(ConsumerKeyError):
        build_link("click", 1, {"cost": "1"}, encrypt="cost", consumer_key="short", private_key=KEYS[16])
