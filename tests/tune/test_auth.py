"""measure.tune.auth: MeasureAuth signs a requests call as the seed's Go example does, with keys read afresh."""

import pytest
import requests

from measure import signing
from measure.signing import encode_post_params, generate_signature
from measure.tune.auth import FORM, MeasureAuth
from tests.tune.vectors import HOST, TRUTH, TS


def _prepared(method, url, data=None):
    # A str or bytes body is sent as it is, so its content type is said, as MeasurementClient says it.
    headers = {"Content-Type": FORM} if isinstance(data, (str, bytes)) else None
    return requests.Request(method, url, data=data, headers=headers).prepare()


def test_measure_auth_signs_a_form_post_that_verifies():
    auth = MeasureAuth("ck", "pk", clock=lambda: 1406146778.9)
    request = auth(_prepared("POST", f"https://{HOST}/serve", {"var1": "blue", "meow": "+-=", "alpha": "beta"}))
    assert request.headers["mat-consumer-key"] == "ck"
    assert request.headers["mat-timestamp"] == TS
    expected = generate_signature("pk", "POST", HOST, "/serve", TS,
                                  encode_post_params({"var1": "blue", "meow": "+-=", "alpha": "beta"}))
    assert request.headers["mat-signature"] == expected


def test_measure_auth_signs_the_body_exactly_as_sent_without_reencoding_it():
    # "%7E" is not how encode_post_params writes "~": decoding and encoding the body again would
    # sign "&a=~" while "a=%7E" goes out. The body is signed as it is sent.
    auth = MeasureAuth("ck", "pk", clock=lambda: int(TS))
    request = auth(_prepared("POST", f"https://{HOST}/serve", "a=%7E&b=x+y"))
    assert request.body == "a=%7E&b=x+y"
    assert request.headers["mat-signature"] == generate_signature("pk", "POST", HOST, "/serve", TS, "&a=%7E&b=x+y")


def test_measure_auth_puts_a_dicts_pairs_in_the_spec_order_and_signs_that_body():
    auth = MeasureAuth("ck", "pk", clock=lambda: int(TS))
    request = auth(_prepared("POST", f"https://{HOST}/serve", {"var1": "blue", "meow": "+-=", "alpha": "beta"}))
    assert request.body == encode_post_params({"var1": "blue", "meow": "+-=", "alpha": "beta"})[1:]
    assert request.headers["Content-Length"] == str(len(request.body))
    assert request.headers["mat-signature"] == generate_signature("pk", "POST", HOST, "/serve", TS, "&" + request.body)


def test_measure_auth_refuses_a_key_given_twice_and_a_body_that_is_not_ascii():
    with pytest.raises(signing.MultiValuedParameterError, match="'a'"):
        MeasureAuth("ck", "pk")(_prepared("POST", f"https://{HOST}/serve", [("a", "1"), ("b", "2"), ("a", "3")]))
    with pytest.raises(signing.SigningError, match="ASCII"):
        MeasureAuth("ck", "pk")(_prepared("POST", f"https://{HOST}/serve", "a=é".encode()))


def test_measure_auth_get_reproduces_the_seed_get_vector():
    request = MeasureAuth("ck", "adv1", clock=lambda: 1406146778)(_prepared("GET", f"https://{HOST}/serve"))
    assert request.headers["mat-signature"] == TRUTH[0][2]


def test_measure_auth_takes_a_fresh_timestamp_each_call():
    times = iter([100, 200])
    auth = MeasureAuth("ck", "pk", clock=lambda: next(times))
    first = auth(_prepared("GET", "https://h/serve")).headers["mat-timestamp"]
    second = auth(_prepared("GET", "https://h/serve")).headers["mat-timestamp"]
    assert (first, second) == ("100", "200")


def test_measure_auth_reading_takes_the_keys_afresh_for_every_request():
    # The client's case: the keys come from Secret Manager behind a TTL cache and may rotate.
    keys = iter([("ck1", "adv1"), ("ck2", "other")])
    auth = MeasureAuth.reading(lambda: next(keys), clock=lambda: int(TS))
    first = auth(_prepared("GET", f"https://{HOST}/serve")).headers
    second = auth(_prepared("GET", f"https://{HOST}/serve")).headers
    assert (first["mat-consumer-key"], first["mat-signature"]) == ("ck1", TRUTH[0][2])
    assert second["mat-consumer-key"] == "ck2"
    assert second["mat-signature"] == generate_signature("other", "GET", HOST, "/serve", TS)
    assert "other" not in repr(auth)


def test_measure_auth_refuses_json_posts_and_repr_hides_the_private_key():
    with pytest.raises(signing.SigningError, match="form-encoded"):
        MeasureAuth("ck", "pk")(requests.Request("POST", "https://h/serve", json={"a": 1}).prepare())
    assert "pk" not in repr(MeasureAuth("consumer", "pk-secret"))


def test_measure_auth_is_still_reachable_from_signing():
    # The public surface (docs/design.md): measure.signing re-exports what measure.tune defines.
    from measure.tune import auth

    assert signing.MeasureAuth is auth.MeasureAuth is MeasureAuth
    assert issubclass(signing.MeasureAuth, requests.auth.AuthBase)
    request = signing.MeasureAuth("ck", "adv1", clock=lambda: int(TS))(_prepared("GET", f"https://{HOST}/serve"))
    assert request.headers["mat-consumer-key"] == "ck"
    assert request.headers["mat-timestamp"] == TS
    assert request.headers["mat-signature"] == TRUTH[0][2]
    with pytest.raises(AttributeError, match="no_such_name"):
        signing.no_such_name  # noqa: B018
