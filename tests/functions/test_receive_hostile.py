"""Hostile and malformed webhook calls: every one a 4xx naming the problem, none a 5xx, nothing published.

Several hundred requests through functions-framework's app (receive as deployed, publishing to
the emulator): bad and missing tokens, every field wrong in every way, wrong types, huge bodies
and fields, invalid UTF-8, deep JSON, duplicate keys, mixed batches, wrong content types and
methods, NUL bytes, unicode confusables in field names. Then a handful of raw HTTP requests
against a real server (CR/LF in header values, request smuggling, line folding), and property
tests on the webhook as a whole and on the parsers where tests/events/test_body.py leaves a gap.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import flask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from measure import events
from measure.config import load
from measure.functions.receive import MAX_BODY_BYTES, Webhook
from tests.helpers import CONSUMER_KEY, PRIVATE_KEY, SITE_IDS, TOKENS, app_client, base_env, bearer, seed_form

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
NDJSON = "application/x-ndjson"
NOW = int(time.time())


@dataclass
class Case:
    name: str
    body: bytes = b""
    content_type: str | None = JSON
    headers: dict[str, str] = field(default_factory=lambda: dict(bearer()))
    method: str = "POST"
    path: str = "/measure"
    status: int | None = None  # when one status is the only right answer
    names: str | None = None  # a field (or "body", "Content-Type") the answer must name


def good(**changes) -> dict:
    event = {"user_id": "player-1", "event_name": "game_open", "ip": "175.124.248.15", "time_stamp": NOW,
             "platform": "pc", "storefront": "steam"}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()


def js(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def form_body(fields: dict) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


# --- the cases ------------------------------------------------------------------------------------

# Values each field must refuse, with the reason in a word (for the test id).
BAD_VALUES: dict[str, list] = {
    "user_id": [None, True, False, 1.5, "", "   ", "x" * 257, "a\x00b", "a\r\nX-Injected: 1", "\x1b[31mred",
                10**16, "a\x7fb", "next\x85line", "a\x9bb"],
    "event_name": ["", "   ", None, True, 2.5, "x" * 129, "a\tb", "a\u200bb", "a\u2028b", "\x00", "\u202e"],
    "ip": ["10.0.0.1", "127.0.0.1", "::1", "0.0.0.0", "224.0.0.1", "169.254.1.1", "fe80::1%eth0", "192.0.2.1",
           "100.64.0.1", "256.1.1.1", "1.2.3", "01.2.3.4", "localhost", "175.124.248.15/24", 175124248, None,
           "", "::ffff:10.0.0.1", "1" * 65, "175.124.248.15\x00", "fc00::1", "2001:db8::1", "175.124.248.15:80",
           "http://175.124.248.15/", True, "١٧٥.١٢٤.٢٤٨.١٥"],
    "time_stamp": ["", "abc", "-1", -1, 1.5, "1.5", "1e9", True, None, NOW * 1000, 0, 10**20, "١٧٢٤٠٩٤٧٨٣",
                   " 0x10", NOW + 10_000, NOW - 40 * 86400, str(NOW * 1000), "1724094783; DROP TABLE", float("1e9")],
    "platform": ["", None, "switch", "pc/steam", "p\x00c", "x" * 33, 1.5, True],
    "storefront": ["", None, "eshop", "steam/x", "s\nteam", "x" * 33, False],
    "event_id": ["a b", "a/b", "<script>alert(1)</script>", "x" * 129, "é", "a\x00", None, True, 1.5,
                 "'; DROP TABLE events; --", "../../etc/passwd", "${jndi:ldap://x}"],
    "revenue": ["-1", "1e5", "NaN", "1,000", True, "abc", -1, "Infinity", "0x10", "1" * 25, "9.999999999"],
    "currency_code": ["US", "USDX", "U$D", 1, "€€€", None],
    "country_code": ["USA", "1A", "u", 7],
    "quantity": ["-1", "1.5", 1.5, 10**16, "x", -3],
    "level": ["x", -1, "1" * 16],
    "rating": ["-0.5", "five", -1.0],
    "date1": ["yesterday", -5, "2024-08-19"],
    "date2": [1.5, "1e3"],
    "ios_ifa": ["zz-zz", "x" * 65, 12, "00000000-0000-0000-0000-00000000000g"],
    "google_aid": ["not an id", "{}"],
    "user_agent": ["x" * 1025, "Mozilla\x00", "a\r\nb"],
    "attribute_sub1": ["\x07", "x" * 257, ["nested"], {"a": 1}],
    "app_version": [{"major": 1}, ["1"]],
    "search_string": ["x" * 257],
}

# Field names that look like ours but are not: unicode confusables, invisible characters, case,
# punctuation and names other systems give special meaning.
CONFUSABLE_NAMES = [
    "user_\u0456d",  # Cyrillic і
    "\uff55\uff53\uff45\uff52_\uff49\uff44",  # fullwidth
    "user_id\u200b",  # zero-width space
    "\u200buser_id",
    "User_ID",
    "user-id",
    "user id",
    "time_stamp ",
    "ip\t",
    "",
    "\x00",
    "x" * 10_000,
    "__proto__",
    "constructor",
    "$where",
    "transaction_id",
    "device_ip",
    "advertiser_id",
    "site_id",
    "action",
    "mat-signature",
]


def field_cases() -> list[Case]:
    cases = []
    for name, values in BAD_VALUES.items():
        for i, value in enumerate(values):
            # An unconfigured platform/storefront pair is reported under platform.
            named = "platform" if value in ("switch", "eshop") else name
            cases.append(Case(f"{name}-bad-{i}", js(good(**{name: value})), names=named))
    for name in events.REQUIRED_FIELDS:
        cases.append(Case(f"{name}-missing", js(good(**{name: _DROP})), names=name))
        cases.append(Case(f"{name}-missing-form", form_body({k: str(v) for k, v in good(**{name: _DROP}).items()}),
                          FORM, names=name))
    for i, name in enumerate(CONFUSABLE_NAMES):
        renamed = good(user_id=_DROP)
        renamed[name] = "player-1"
        cases.append(Case(f"confusable-name-{i}", js(renamed), names="user_id"))
    return cases


def body_cases() -> list[Case]:
    deep_array = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    seed = js(good())
    return [
        Case("empty", b"", names="body"),
        Case("whitespace", b" \n\t ", names="body"),
        Case("ndjson-blank-lines", b"\n\n\n", NDJSON, names="body"),
        Case("form-empty", b"", FORM, names="body"),
        Case("invalid-utf8-ff", b"\xff", names="body"),
        Case("invalid-utf8-overlong", b'{"user_id":"\xc0\xaf"}', names="body"),
        Case("invalid-utf8-surrogate", b'{"user_id":"\xed\xa0\x80"}', names="body"),
        Case("invalid-utf8-beyond-unicode", b'{"user_id":"\xf4\x90\x80\x80"}', names="body"),
        Case("invalid-utf8-truncated", seed[:-2] + b'\xe2\x82"}', names="body"),
        Case("utf16-with-bom", "\ufeff".encode("utf-16-le") + json.dumps(good()).encode("utf-16-le"), names="body"),
        Case("invalid-utf8-in-form", b"user_id=\xff\xfe&ip=175.124.248.15", FORM, names="body"),
        Case("invalid-utf8-ndjson-line-2", seed + b"\n\xff\n", NDJSON, names="body"),
        Case("json-open-brace", b"{", names="body"),
        Case("json-open-bracket", b"[", names="body"),
        Case("json-close", b"}", names="body"),
        Case("json-nul-word", b"nul", names="body"),
        Case("json-nan", b"NaN", names="body"),
        Case("json-nan-in-array", b"[NaN]", names="body"),
        Case("json-infinity-value", seed[:-1] + b',"revenue":Infinity}', names="body"),
        Case("json-huge-float", b"1e999", names="body"),
        Case("json-huge-float-value", seed[:-1] + b',"revenue":1e999}', names="body"),
        Case("json-5000-digit-int", seed[:-1] + b',"quantity":' + b"9" * 5000 + b"}", names="body"),
        Case("json-trailing-data", seed + b"{}", names="body"),
        Case("json-two-objects", seed + b"\n" + seed, names="body"),
        Case("json-single-quotes", b"{'user_id': 'a'}", names="body"),
        Case("json-comment", b"// comment\n" + seed, names="body"),
        Case("json-trailing-comma", b"[" + seed + b",]", names="body"),
        Case("json-string", b'"game_open"', names="body"),
        Case("json-number", b"123", names="body"),
        Case("json-null", b"null", names="body"),
        Case("json-true", b"true", names="body"),
        Case("json-empty-array", b"[]", names="body"),
        Case("json-array-of-array", b"[[]]", names="body"),
        Case("json-array-of-null", b"[null]", names="body"),
        Case("json-deep-array", deep_array, names="body"),
        Case("json-deep-object", deep_object, names="body"),
        Case("json-duplicate-key", b'{"user_id":"a","user_id":"b","ip":"175.124.248.15"}', names="user_id"),
        Case("json-duplicate-key-escaped", b'{"user_id":"a","user\\u005fid":"a"}', names="user_id"),
        Case("json-nul-in-key", b'{"user\\u0000id":"a"}'),
        Case("json-raw-nul-byte", seed[:-1] + b',\x00"a":1}', names="body"),
        Case("json-escaped-nul-value", js(good(user_id="a\u0000b")), names="user_id"),
        Case("json-lone-surrogate-escape", js(good())[:-1] + b',"attribute_sub1":"a\\ud800"}', names="attribute_sub1"),
        Case("json-too-many-events", js([good(user_id=f"u{i}") for i in range(events.MAX_BATCH + 1)]),
             status=413, names="body"),
        Case("json-too-many-keys", js({**good(), **{f"k{i}": "v" for i in range(100)}}), names="event"),
        Case("body-over-limit", b'{"user_id":"' + b"a" * (MAX_BODY_BYTES + 10) + b'"}', status=413, names="body"),
        Case("huge-field-value", js(good(user_id="a" * 500_000)), names="user_id"),
        Case("ndjson-array-line", seed + b"\n[1,2]\n", NDJSON, names="body"),
        Case("ndjson-bad-line-3", seed + b"\n" + seed + b"\n{oops\n", NDJSON, names="body"),
        Case("ndjson-scalar-line", b"1\n", NDJSON, names="body"),
        Case("ndjson-nested-value", js(good(user_id={"a": 1})), NDJSON, names="user_id"),
        Case("ndjson-too-many-lines", b"\n".join([seed] * (events.MAX_BATCH + 1)), NDJSON, status=413,
             names="body"),
        Case("jsonl-invalid", b"{\n}", "application/jsonl", names="body"),
        Case("form-duplicate-key", b"user_id=a&user_id=b", FORM, names="user_id"),
        Case("form-bad-percent", b"user_id=%ZZ", FORM),
        Case("form-percent-invalid-utf8", b"user_id=%FF", FORM, names="body"),
        Case("form-only-equals", b"=", FORM),
        Case("form-ampersands", b"&&", FORM, names="body"),
        Case("form-key-without-value", b"user_id", FORM, names="body"),
        Case("form-too-many-fields", "&".join(f"k{i}=v" for i in range(200)).encode(), FORM, names="body"),
        Case("form-nul-value", form_body({**good(), "user_id": "a\x00b"}), FORM, names="user_id"),
        Case("form-bracket-key", form_body({**good(), "user_id[]": "a"}), FORM),
        Case("form-json-body", seed, FORM),
        Case("json-form-body", form_body(good()), JSON, names="body"),
    ]


def batch_cases() -> list[Case]:
    valid = [good(user_id=f"batch-{i}") for i in range(3)]
    return [
        Case("batch-one-bad-ip", js([*valid, good(ip="10.0.0.1")]), names="ip"),
        Case("batch-one-scalar", js([*valid, 1]), names="body"),
        Case("batch-one-array", js([*valid, []]), names="body"),
        Case("batch-one-null", js([*valid, None]), names="body"),
        Case("batch-one-empty-object", js([*valid, {}]), names="user_id"),
        Case("batch-same-id-different-fields",
             js([good(event_id="same", user_id="a"), good(event_id="same", user_id="b")]), names="event_id"),
        Case("batch-last-of-thousand-bad", js([good(user_id=f"k{i}") for i in range(999)] + [good(ip="::1")]),
             names="ip"),
        Case("batch-every-event-bad", js([good(ip="10.0.0.1"), good(time_stamp="x"), good(platform="x")])),
        Case("ndjson-batch-one-bad", b"\n".join(js(e) for e in [*valid, good(storefront="")]), NDJSON,
             names="storefront"),
    ]


def content_type_cases() -> list[Case]:
    seed = js(good())
    types = [None, "", "text/plain", "application/xml", "multipart/form-data; boundary=x",
             "application/json; charset=latin-1", "application/json; charset=utf-16", f"{FORM}; charset=iso-8859-1",
             "application/jsonp", "json", "*/*",
             "application/vnd.api+json", "text/json", "application/json\x00", "application/ json",
             "application/x-ndjson; charset=ascii", "text/html; charset=utf-8", "image/png"]
    return [Case(f"content-type-{i}", seed, t, status=415, names="Content-Type") for i, t in enumerate(types)]


def auth_cases() -> list[Case]:
    seed = js(good())
    cyrillic = TOKENS[0].replace("o", "\u043e")
    values = [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dG9rZW4tb25lOg==", f"Token {TOKENS[0]}", TOKENS[0],
              f"Bearer {TOKENS[0]}-x", f"Bearer x{TOKENS[0]}", f"Bearer {TOKENS[0].upper()}", f"Bearer {cyrillic}",
              f"Bearer {TOKENS[0]}\x00", "Bearer " + "a" * 100_000, f"Bearer {TOKENS[0]}{TOKENS[1]}",
              f"Bearer {TOKENS[0]},{TOKENS[1]}", f"Bearer {TOKENS[0]} {TOKENS[1]}", f"Bearer\t{TOKENS[0]}",
              f"Bearer {PRIVATE_KEY}", f"Bearer {CONSUMER_KEY}", f"Bearer {TOKENS[0][:-1]}", "Bearer null",
              "Bearer undefined", "Bearer *", f"Bearer {TOKENS[0]}\x1b"]
    cases = []
    for i, value in enumerate(values):
        headers = {} if value is None else {"Authorization": value}
        cases.append(Case(f"auth-{i}", seed, headers=headers, status=401))
    # Refused before the body is read: a bad token with a bad body is still 401.
    cases.append(Case("auth-before-body", b"\xff", headers={"Authorization": "Bearer nope"}, status=401))
    return cases


def route_cases() -> list[Case]:
    seed = js(good())
    cases = [Case(f"method-{m}-{p}", seed, method=m, path=p, status=405)
             for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE") for p in ("/", "/measure")]
    for i, path in enumerate(["/measures", "/measure/extra", "/api/measure", "/%2e%2e/measure", "/measure;x",
                              "/measure%00", "/MEASURE", "/.env", "/../../etc/passwd", "/measure.json"]):
        cases.append(Case(f"path-{i}", seed, path=path, status=404))
    return cases


CASES = field_cases() + body_cases() + batch_cases() + content_type_cases() + auth_cases() + route_cases()


def flat_problems(body: dict) -> list[dict]:
    """The answer's problems, also where a body error nests them (a nested shape would be flattened here)."""
    out = []
    for problem in body.get("problems") or []:
        out.extend(flat_problems(problem) if isinstance(problem, dict) and "problems" in problem else [problem])
    return out


def judge(case: Case, status: int, content_type: str, raw: bytes) -> str | None:
    """What is wrong with the answer to one case, or None."""
    if not 400 <= status < 500:
        return f"status {status}: {raw[:200]!r}"
    if case.status is not None and status != case.status:
        return f"status {status}, expected {case.status}: {raw[:200]!r}"
    if case.method == "HEAD":
        return None
    if not content_type.startswith("application/json"):
        return f"Content-Type {content_type!r}"
    try:
        body = json.loads(raw)
    except ValueError:
        return f"not JSON: {raw[:200]!r}"
    if not (isinstance(body, dict) and body.get("error") and body.get("message") and "problems" in body):
        return f"error body lacks error/message/problems: {body}"
    problems = flat_problems(body)
    if status in (400, 413, 415):
        if not problems or not all(p.get("field") and p.get("problem") for p in problems):
            return f"no problem names a field: {body}"
    if case.names is not None and case.names not in {p.get("field") for p in problems}:
        return f"does not name {case.names!r}: {json.dumps(body)[:400]}"
    return None


def test_there_are_hundreds_of_cases():
    assert len(CASES) >= 200
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.fixture
def client(topology, monkeypatch):
    return app_client(monkeypatch, "receive", base_env())


def test_every_hostile_request_is_a_named_4xx_and_nothing_is_published(client, topology):
    wrong = {}
    for case in CASES:
        headers = dict(case.headers)
        if case.content_type is not None:
            headers["Content-Type"] = case.content_type
        response = client.open(case.path, method=case.method, data=case.body, headers=headers)
        problem = judge(case, response.status_code, response.headers.get("Content-Type", ""), response.get_data())
        if problem:
            wrong[case.name] = problem
    assert not wrong, f"{len(wrong)} of {len(CASES)} cases answered wrongly:\n" + "\n".join(
        f"  {name}: {problem}" for name, problem in wrong.items())
    leaked = topology.pull(topology.names.events_tap_subscription, expect=1, timeout=1.0)
    assert leaked == [], [m.message.data[:200] for m in leaked]


@pytest.mark.parametrize(("body", "content_type"), [(b"{", JSON), (b"{}", "text/plain"), (b"\xff", JSON)])
def test_body_errors_list_problems_in_the_documented_shape(client, body, content_type):
    response = client.post("/measure", data=body, headers={**bearer(), "Content-Type": content_type})
    assert response.status_code in (400, 415)
    problems = response.get_json()["problems"]
    assert problems and all(set(p) == {"index", "field", "problem"} for p in problems), problems


def test_the_valid_twin_of_the_cases_is_accepted(client, topology):
    """The cases are hostile because of what they change, not because the base event is bad."""
    for body, content_type in [(js(good()), JSON), (form_body({k: str(v) for k, v in good().items()}), FORM),
                               (js(good()) + b"\n" + js(good(user_id="p2")), NDJSON)]:
        response = client.post("/measure", data=body, headers={**bearer(), "Content-Type": content_type})
        assert response.status_code == 202, response.get_data(as_text=True)
    assert len(topology.pull(topology.names.events_tap_subscription, expect=4, timeout=5)) == 4


# --- raw HTTP against a real server ------------------------------------------------------------


def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send these) and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    status_line, _, rest = data.partition(b"\r\n")
    header_text, _, payload = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_text.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, payload


def head_of(lines: list[str | bytes]) -> bytes:
    encoded = [line if isinstance(line, bytes) else line.encode("latin-1") for line in lines]
    return b"\r\n".join(encoded) + b"\r\n\r\n"


def test_raw_hostile_requests_against_a_real_server(topology, function_server):
    url = function_server("receive", {**base_env(), **topology.env()})
    body = js(good())
    token = f"Authorization: Bearer {TOKENS[0]}"
    start = ["POST /measure HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    length = f"Content-Length: {len(body)}"
    cases = {
        # CR/LF in a header value: at the HTTP level it ends the header; the injected line is a header
        # of its own and the token before it is not valid.
        "crlf-injection": (head_of([*start, "Authorization: Bearer nope\r\nX-Injected: 1",
                                    "Content-Type: application/json", length]), body),
        "bare-lf-in-value": (head_of([*start, f"Authorization: Bearer nope\nX-Injected: {TOKENS[0]}",
                                      "Content-Type: application/json", length]), body),
        "nul-in-header": (head_of([*start, token + "\x00", "Content-Type: application/json", length]), body),
        "latin1-in-header": (head_of([*start, b"Authorization: Bearer \xff\xfe", "Content-Type: application/json",
                                      length]), body),
        "obs-fold": (head_of([*start, "Authorization: Bearer", f" {TOKENS[0]}x", "Content-Type: application/json",
                              length]), body),
        "smuggling-cl-te": (head_of([*start, token, "Content-Type: application/json", length,
                                     "Transfer-Encoding: chunked"]), body),
        "negative-length": (head_of([*start, token, "Content-Type: application/json", "Content-Length: -1"]), body),
        "huge-header": (head_of([*start, "Authorization: Bearer " + "a" * 20_000, "Content-Type: application/json",
                                 length]), body),
        "declared-too-large": (head_of([*start, token, "Content-Type: application/json",
                                        f"Content-Length: {MAX_BODY_BYTES + 1}"]), b"a" * (MAX_BODY_BYTES + 1)),
        "chunked-invalid-event": (head_of([*start, token, "Content-Type: application/json",
                                           "Transfer-Encoding: chunked"]),
                                  b"%x\r\n%s\r\n0\r\n\r\n" % (len(js(good(ip="10.0.0.1"))), js(good(ip="10.0.0.1")))),
        "content-type-injection": (head_of([*start, token, "Content-Type: text/plain\r\nContent-Type: application/json",
                                            length]), body),
    }
    answers = {}
    for name, (head, payload) in cases.items():
        status, headers, answer = raw_request(url, head, payload)
        answers[name] = (status, headers.get("content-type", ""), answer[:300])
        assert 400 <= status < 500, (name, status, answer[:300])
        if headers.get("content-type", "").startswith("application/json"):
            parsed = json.loads(answer)
            assert parsed["error"] and parsed["message"], (name, parsed)
    # gunicorn itself refuses malformed HTTP (bare LF, NUL, line folding, CL+TE, a second Content-Type,
    # a huge header) with its own 400/431 page before measure sees it, as Google's front end would;
    # what it hands on gets measure's JSON answer.
    for name in ("crlf-injection", "latin1-in-header", "declared-too-large", "chunked-invalid-event"):
        assert answers[name][1].startswith("application/json"), (name, answers[name])
    assert answers["crlf-injection"][0] == 401 and answers["huge-header"][0] == 431
    assert topology.pull(topology.names.events_tap_subscription, expect=1, timeout=1.0) == []


# --- property tests -------------------------------------------------------------------------------


class RecordingPublisher:
    def __init__(self):
        self.published: list = []

    def publish(self, topic, messages):
        self.published.extend(messages)
        return [str(i) for i, _ in enumerate(messages)]


_app = flask.Flask("hostile")
_webhook_config = load(base_env())
_content_types = st.sampled_from([FORM, JSON, NDJSON, "application/jsonl", "text/plain", ""]) | st.text(max_size=40)
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
_field_names = st.sampled_from([*events.FIELDS, *CONFUSABLE_NAMES[:8]]) | st.text(max_size=12)
_events_like = st.dictionaries(_field_names, _json_scalars | st.just("175.124.248.15") | st.just(NOW), max_size=10)
_bodies = (st.binary(max_size=300)
           | _json_values.map(js)
           | st.lists(_events_like, max_size=4).map(js)
           | _events_like.map(lambda e: form_body({str(k): str(v) for k, v in e.items()})))
_auth = st.sampled_from([f"Bearer {TOKENS[0]}", f"Bearer {TOKENS[1]}"]) | st.text(max_size=40).filter(
    lambda s: "\n" not in s and "\r" not in s)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies, content_type=_content_types, authorization=_auth,
       method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]), path=st.sampled_from(["/", "/measure", "/x"]))
def test_the_webhook_never_answers_5xx_and_publishes_only_with_a_202(body, content_type, authorization, method, path):
    publisher = RecordingPublisher()
    webhook = Webhook(_webhook_config, lambda: TOKENS, publisher)
    headers = {"Authorization": authorization}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        context = _app.test_request_context(path, method=method, data=body, headers=headers)
    except ValueError:
        return  # a header value the HTTP layer itself refuses
    with context:
        text, status, _ = webhook.handle(flask.request)
    answer = json.loads(text)
    assert status in (202, 400, 401, 404, 405, 413, 415), (status, answer)
    if status == 202:
        assert answer["accepted"] == len(answer["event_ids"]) == len(publisher.published) > 0
    else:
        assert publisher.published == []
        assert answer["error"] and answer["message"] and isinstance(answer["problems"], list)


_text_fields = st.sampled_from(["user_id", "event_name", "platform", "storefront", "event_id", "user_agent",
                                "attribute_sub1", "app_version", "currency_code", "ip"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(name=_text_fields, value=st.text(min_size=1, max_size=40))
def test_an_accepted_event_carries_no_control_character_and_respects_the_limits(name, value):
    raw = {**seed_form(), name: value}
    try:
        (event,) = events.validate([raw], site_ids=SITE_IDS)
    except events.InvalidEvents as error:
        assert {p.field for p in error.problems} >= {name} or name in ("platform", "storefront")
        return
    for key, text in event.to_dict().items():
        text = str(text)
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text), key
        assert len(text) <= events.MAX_FIELD_LENGTH[key], key


_event_values = st.fixed_dictionaries(
    {"user_id": st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=20)
     .filter(str.strip),
     "ip": st.sampled_from(["175.124.248.15", "8.8.8.8", "2001:4860:4860::8888"]),
     "time_stamp": st.integers(NOW - 86400, NOW).map(str),
     "platform": st.sampled_from(["pc", "PC", " ios "]),
     "storefront": st.just("steam")},
    optional={"event_name": st.sampled_from(["game_open", "purchase", "Boss Defeated", "ünïcödé"]),
              "revenue": st.decimals(0, 10_000, places=2).map(str),
              "attribute_sub1": st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=20)
              .filter(str.strip)},
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event_values, min_size=1, max_size=4))
def test_form_json_and_ndjson_of_the_same_events_are_the_same_events_with_the_same_ids(raw_events):
    sites = {**SITE_IDS, "ios/steam": "2962"}

    def parse(body: bytes, content_type: str):
        return events.validate(events.parse_body(body, content_type), site_ids=sites, now=NOW)

    as_json = parse(js(raw_events), JSON)
    as_ndjson = parse(b"\n".join(js(e) for e in raw_events), NDJSON)
    assert as_json == as_ndjson
    as_forms = [parse(form_body(raw), FORM)[0] for raw in raw_events]  # a form body holds one event
    assert set(as_forms) == set(as_json)
    assert {e.event_id for e in as_forms} == {e.event_id for e in as_json}
