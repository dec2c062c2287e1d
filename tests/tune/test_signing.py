"""Signing: the seed's Go truth vectors byte for byte, each step alone, and properties."""

import base64
import hmac
import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from measure import signing
from measure.signing import (
    InvalidMethodError,
    MultiValuedParameterError,
    SignatureMismatchError,
    StaleTimestampError,
    encode_post_params,
    generate_signature,
    verify_signature,
)
from tests.tune.vectors import HOST, TRUTH, TS


@pytest.mark.parametrize(("method", "params", "truth"), TRUTH)
def test_truth_vectors(method, params, truth):
    post_params = encode_post_params(params) if method == "POST" else ""
    assert generate_signature("adv1", method, HOST, "/serve", TS, post_params) == truth


def test_string_to_sign_is_the_five_parts_joined_by_newlines():
    assert signing.string_to_sign("POST", HOST, "/serve", TS, "&a=1") == f"POST\n{HOST}\n/serve\n{TS}\n&a=1"


def test_sign_is_unpadded_base64url():
    signature = signing.sign("k", "anything")
    assert "=" not in signature and "+" not in signature and "/" not in signature
    assert len(signature) == 43  # 32 bytes of HMAC-SHA256


def standard_hmac(private_key: str, to_sign: str) -> str:
    digest = hmac.digest(private_key.encode(), to_sign.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize("length", [0, 1, 31, 63, 64, 65, 128, 200])
def test_sign_is_the_standard_hmac_for_keys_of_every_length_around_the_block(length):
    # The keyed state is built by hand (RFC 2104's padded blocks); a key longer than SHA-256's
    # 64-byte block is hashed first, a shorter one zero-padded: both must give hmac's answer.
    private_key = ("key" * 100)[:length]  # ASCII: `length` bytes
    to_sign = "POST\nh\n/serve\n1\n&a=1"
    assert signing.sign(private_key, to_sign) == standard_hmac(private_key, to_sign)


@given(private_key=st.text(max_size=100), to_sign=st.text(max_size=300))
def test_sign_agrees_with_the_standard_hmac(private_key, to_sign):
    assert signing.sign(private_key, to_sign) == standard_hmac(private_key, to_sign)


def test_the_kept_keyed_state_is_never_advanced_by_a_signature():
    # A second signature under the same key must not start where the first ended.
    first = signing.sign("pk", "one")
    signing.sign("pk", "two")
    assert signing.sign("pk", "one") == first == standard_hmac("pk", "one")
    assert signing.sign("other", "one") == standard_hmac("other", "one")


def test_encode_post_params_sorts_keys_and_escapes_like_go_query_escape():
    assert encode_post_params({"var1": "blue", "meow": "+-=", "alpha": "beta"}) == "&alpha=beta&meow=%2B-%3D&var1=blue"
    assert encode_post_params({"s": "a b", "t": "~_.-", "u": "é&="}) == "&s=a+b&t=~_.-&u=%C3%A9%26%3D"
    assert encode_post_params({"empty": ""}) == "&empty="
    assert encode_post_params({}) == ""


def test_encode_post_params_accepts_single_value_lists_and_numbers():
    assert encode_post_params({"a": ["1"], "b": 2}) == "&a=1&b=2"


@pytest.mark.parametrize("params", [{"a": ["1", "2"]}, {"a": []}, [("a", "1"), ("a", "2")]])
def test_multi_valued_parameters_are_refused(params):
    with pytest.raises(MultiValuedParameterError, match="'a'"):
        encode_post_params(params)


def test_none_and_bool_values_are_refused():
    with pytest.raises(signing.SigningError, match="'a'"):
        encode_post_params({"a": None})
    with pytest.raises(signing.SigningError, match="'b'"):
        encode_post_params({"b": True})


def test_only_get_and_post_can_be_signed():
    with pytest.raises(InvalidMethodError, match="PUT"):
        generate_signature("k", "PUT", HOST, "/serve", TS)


def test_signing_headers():
    assert signing.signing_headers("ck", "sig", 12) == {
        "mat-consumer-key": "ck", "mat-signature": "sig", "mat-timestamp": "12"}


def test_request_target_matches_go_request_uri():
    assert signing.request_target("https://h.example:8443/serve?a=1&b=2") == ("h.example:8443", "/serve?a=1&b=2")
    assert signing.request_target("https://h.example") == ("h.example", "/")


def test_importing_signing_does_not_import_requests():
    # The steps alone (the sandbox's verifier, `measure sign`) need no HTTP library; MeasureAuth,
    # in measure.tune.auth, is what brings requests in.
    # Nor does it import the auth back: auth imports signing, never the other way round.
    code = ("import sys, measure.tune.signing; "
            "assert not {'requests', 'measure.tune.auth'} & set(sys.modules), sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr


def test_verify_signature_reasons():
    sig = generate_signature("pk", "GET", HOST, "/serve", TS)
    verify_signature("pk", "GET", HOST, "/serve", TS, sig, now=int(TS))
    with pytest.raises(SignatureMismatchError):
        verify_signature("other", "GET", HOST, "/serve", TS, sig, now=int(TS))
    with pytest.raises(StaleTimestampError, match="tolerance 300"):
        verify_signature("pk", "GET", HOST, "/serve", TS, sig, now=int(TS) + 301)
    with pytest.raises(signing.InvalidTimestampError):
        verify_signature("pk", "GET", HOST, "/serve", "12.5", sig, now=12)
    with pytest.raises(signing.MissingHeaderError, match="mat-signature"):
        verify_signature("pk", "GET", HOST, "/serve", TS, None, now=int(TS))


keys = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
values = st.text(max_size=30).filter(lambda v: "\x00" not in v)
params_strategy = st.dictionaries(keys, values, max_size=8)


@given(params=params_strategy, private_key=st.text(min_size=1, max_size=40), ts=st.integers(0, 2**31 - 1))
def test_sign_verify_round_trip(params, private_key, ts):
    post = encode_post_params(params)
    sig = generate_signature(private_key, "POST", HOST, "/serve", ts, post)
    verify_signature(private_key, "POST", HOST, "/serve", str(ts), sig, post, now=ts)


@given(params=params_strategy)
def test_encoding_is_independent_of_key_order(params):
    reversed_params = dict(reversed(list(params.items())))
    assert encode_post_params(params) == encode_post_params(reversed_params)


@given(params=params_strategy)
def test_a_form_body_is_signed_as_sent_in_the_spec_order(params):
    # encode_post_params' body comes back as it is; requests' encoding of the same dict (urlencode,
    # insertion order) is put in order and then is that same body; a receiver reads the pairs back.
    body = encode_post_params(params)[1:]
    assert signing.signed_form(body) == (body, "&" + body if body else "")
    assert signing.signed_form(body)[0] is body
    assert signing.signed_form(urlencode(params)) == signing.signed_form(body)
    assert dict(parse_qsl(body, keep_blank_values=True)) == params


def test_a_form_body_loses_its_empty_pairs_before_it_is_signed():
    assert signing.signed_form("b=2&&a=1&") == ("a=1&b=2", "&a=1&b=2")
    assert signing.signed_form("&") == ("", "")  # no pairs at all: nothing to sign, as for no body


@given(params=params_strategy, key=keys, value=values)
def test_changing_any_value_changes_the_signature(params, key, value):
    changed = {**params, key: value}
    if changed == params:
        return
    a = generate_signature("pk", "POST", HOST, "/serve", TS, encode_post_params(params))
    b = generate_signature("pk", "POST", HOST, "/serve", TS, encode_post_params(changed))
    assert a != b
