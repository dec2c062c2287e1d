"""measure.gcp.googleapi over real sockets: retries within a deadline, clear errors, and the
metadata server's token fetched once and refreshed before it expires."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from measure.gcp import googleapi
from measure.gcp.connections import Pool
from measure.tools.emulator import free_port


class Script:
    """A local HTTP server answering from a list of (status, body) and recording requests."""

    def __init__(self, answers, delay: float = 0.0):
        self.answers = list(answers)
        self.delay = delay
        self.requests: list[tuple[str, str, dict, bytes]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                script.requests.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
                if script.delay:
                    threading.Event().wait(script.delay)
                status, body = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def script():
    made = []

    def make(answers, delay: float = 0.0) -> Script:
        made.append(Script(answers, delay))
        return made[-1]

    yield make
    for s in made:
        s.close()


def api_for(server: Script) -> googleapi.Api:
    return googleapi.Api(f"http://{server.host}", googleapi.NoToken(), Pool())


def test_transient_answers_are_retried_until_one_succeeds(script):
    server = script([(503, {"error": {"message": "busy"}}), (429, {}), (200, {"messageIds": ["7"]})])
    answer = api_for(server).call("POST", "/v1/x:publish", {"messages": []}, timeout=10)
    assert answer == {"messageIds": ["7"]}
    assert len(server.requests) == 3
    method, path, headers, body = server.requests[0]
    assert (method, path, headers["Content-Type"], json.loads(body)) == (
        "POST", "/v1/x:publish", "application/json", {"messages": []})


def test_a_permanent_answer_is_raised_at_once_with_googles_message(script):
    server = script([(400, {"error": {"code": 400, "message": "Invalid [topics] name", "status": "INVALID_ARGUMENT"}})])
    with pytest.raises(googleapi.ApiError, match=r"publish to t: HTTP 400: Invalid \[topics\] name") as caught:
        api_for(server).call("POST", "/v1/x:publish", {}, timeout=10, what="publish to t")
    assert caught.value.transient is False and caught.value.status == 400
    assert len(server.requests) == 1


def test_without_retry_a_transient_answer_is_raised_at_once(script):
    server = script([(503, {})])
    with pytest.raises(googleapi.ApiError) as caught:
        api_for(server).call("POST", "/v1/x:pull", {}, timeout=10, retry=False)
    assert caught.value.transient is True
    assert len(server.requests) == 1


def test_an_answer_slower_than_the_timeout_is_deadline_exceeded(script):
    server = script([(200, {})], delay=2.0)
    with pytest.raises(googleapi.DeadlineExceededError):
        api_for(server).call("POST", "/v1/x:pull", {}, timeout=0.3)


def test_nobody_listening_is_retried_and_then_a_transient_error():
    api = googleapi.Api(f"http://127.0.0.1:{free_port()}", googleapi.NoToken(), Pool())
    with pytest.raises(googleapi.ApiError) as caught:
        api.call("POST", "/v1/x:publish", {}, timeout=0.5)
    assert caught.value.transient is True


def test_the_metadata_token_is_fetched_once_and_refreshed_before_it_expires(script):
    metadata = script([(200, {"access_token": "tok-1", "expires_in": 3599, "token_type": "Bearer"}),
                       (200, {"access_token": "tok-2", "expires_in": 3599, "token_type": "Bearer"})])
    now = [1000.0]
    token = googleapi.MetadataServerToken(Pool(), host=metadata.host,
                                          clock=lambda: now[0])
    api_server = script([(200, {})])
    api = googleapi.Api(f"http://{api_server.host}", token, Pool())

    for _ in range(5):
        api.call("GET", "/v1/secret:access", timeout=5)
    assert [h["Authorization"] for _, _, h, _ in api_server.requests] == ["Bearer tok-1"] * 5
    assert len(metadata.requests) == 1
    _, path, headers, _ = metadata.requests[0]
    assert path == "/computeMetadata/v1/instance/service-accounts/default/token"
    assert headers["Metadata-Flavor"] == "Google"

    now[0] += 3599 - googleapi.TOKEN_MARGIN_S  # inside the margin before expiry: refresh
    api.call("GET", "/v1/secret:access", timeout=5)
    assert api_server.requests[-1][2]["Authorization"] == "Bearer tok-2"
    assert len(metadata.requests) == 2


def test_a_metadata_server_failure_is_a_clear_error(script):
    metadata = script([(404, "no service account")])
    token = googleapi.MetadataServerToken(Pool(), host=metadata.host)
    with pytest.raises(googleapi.ApiError, match="metadata server token: HTTP 404"):
        token.headers()


def test_pubsub_goes_to_the_emulator_without_credentials_when_it_is_set(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8681")
    api = googleapi.pubsub()
    assert api.base_url == "http://127.0.0.1:8681"
    assert api.token.headers() == {}


def test_on_google_cloud_the_metadata_server_is_the_credential(monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("K_SERVICE", "measure-receive")
    monkeypatch.setattr(googleapi, "_token", None)
    api = googleapi.pubsub()
    assert api.base_url == googleapi.PUBSUB_URL
    assert isinstance(api.token, googleapi.MetadataServerToken)
    assert api.token.url == "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
    assert googleapi.secret_manager().token is api.token  # one token for every API of the process


def test_secret_manager_access_over_rest_reads_latest_once_per_ttl(script):
    import base64

    from measure.gcp.secrets import SecretManagerRest, SecretManagerSource

    server = script([(200, {"name": "projects/p/secrets/measure-private-key/versions/3",
                            "payload": {"data": base64.b64encode(b"adv1\n").decode()}})])
    now = [0.0]
    source = SecretManagerSource("p", 300, client_factory=lambda: SecretManagerRest(api_for(server)),
                                 clock=lambda: now[0])
    assert [source.get("measure-private-key") for _ in range(10)] == ["adv1"] * 10
    assert [(m, p) for m, p, _, _ in server.requests] == [
        ("GET", "/v1/projects/p/secrets/measure-private-key/versions/latest:access")]
    now[0] += 301
    assert source.get("measure-private-key") == "adv1"
    assert len(server.requests) == 2
