"""Local stand-ins for the Google endpoints that have no emulator: the metadata server (short-lived
tokens, failures on demand) and a scripted Pub/Sub REST front end (409, 429, 401 on demand).
Both record what they were asked, with arrival times, so a test can count fetches and pauses."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandIn:
    """A threaded HTTP server on loopback; `answer(method, path, headers, body)` gives
    (status, body, extra headers). Every request is kept as (time, method, path, headers, body)."""

    def __init__(self):
        self.requests: list[tuple[float, str, str, dict, bytes]] = []
        self.connections: set[tuple[str, int]] = set()  # the clients' (address, port): one a TCP connection
        self.delay = 0.0  # seconds before each answer
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if stand_in.delay:
                    time.sleep(stand_in.delay)
                with stand_in.lock:
                    stand_in.connections.add(self.client_address)
                    # self.headers: looked up case-insensitively, as HTTP headers are
                    stand_in.requests.append((time.monotonic(), self.command, self.path, self.headers, body))
                status, answer, headers = stand_in.answer(self.command, self.path, dict(self.headers), body)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, object, dict]:
        raise NotImplementedError

    def paths(self, containing: str = "") -> list[str]:
        with self.lock:
            return [path for _, _, path, _, _ in self.requests if containing in path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MetadataServer(StandIn):
    """The metadata server as google-auth asks it: tokens living `lifetime` seconds, the first
    `fail_tokens` token fetches answered 503. `token_fetches` counts every token request."""

    TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"

    def __init__(self, lifetime: int = 3599, fail_tokens: int = 0):
        self.lifetime = lifetime
        self.fail_tokens = fail_tokens
        self.issued = 0
        super().__init__()

    @property
    def token_fetches(self) -> int:
        return len(self.paths(self.TOKEN_PATH))

    def answer(self, method, path, headers, body):
        flavor = {"Metadata-Flavor": "Google"}
        if path.startswith(self.TOKEN_PATH):
            with self.lock:
                if self.fail_tokens > 0:
                    self.fail_tokens -= 1
                    return 503, b"metadata server busy", flavor
                self.issued += 1
                token = f"tok-{self.issued}"
            return 200, {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}, flavor
        if path.startswith("/computeMetadata/v1/instance/service-accounts/"):  # by alias or by email
            return 200, {"email": "measure@p.iam.gserviceaccount.com", "aliases": ["default"],
                         "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}, flavor
        if path.startswith("/computeMetadata/v1/project/project-id"):
            return 200, b"p", {**flavor, "Content-Type": "text/plain"}
        if path.startswith("/computeMetadata/v1/universe/universe-domain"):
            return 200, b"googleapis.com", {**flavor, "Content-Type": "text/plain"}
        if path == "/":
            return 200, b"ok", {**flavor, "Content-Type": "text/plain"}
        return 404, b"not here", flavor


class PubsubStandIn(StandIn):
    """Pub/Sub's REST front end, scripted: `script` is a list of (status, error status name,
    headers) answered in turn to publish and pull calls, then 200 for good. Publish answers one
    message id a message; pull answers `pull_messages`.

    `hang_publishes = n`: the next n publish calls get no answer (a keep-alive connection that
    stopped answering) until `unhang()` or a minute; `hang_all_publishes()` hangs every one until
    `unhang()`. `connections` tells the TCP connections the calls came on apart."""

    def __init__(self, script=(), pull_messages=()):
        self.script = list(script)
        self.pull_messages = list(pull_messages)
        self.ids = 0
        self.hang_publishes = 0
        self.hung = 0  # publish calls that got no answer
        self._released = threading.Event()
        super().__init__()

    def hang_all_publishes(self) -> None:
        with self.lock:
            self._released.clear()
            self.hang_publishes = 10**9

    def unhang(self) -> None:
        """Stop hanging; the calls held so far are answered (long after their callers gave up)."""
        with self.lock:
            self.hang_publishes = 0
            self._released.set()
            self._released = threading.Event()

    def close(self) -> None:
        self.unhang()
        super().close()

    def _hang(self, path: str) -> None:
        with self.lock:
            if not (path.endswith(":publish") and self.hang_publishes > 0):
                return
            self.hang_publishes -= 1
            self.hung += 1
            released = self._released
        released.wait(60)

    def calls(self, verb: str) -> list[tuple[float, dict]]:
        with self.lock:
            return [(at, headers) for at, _, path, headers, _ in self.requests if path.endswith(f":{verb}")]

    def answer(self, method, path, headers, body):
        self._hang(path)
        with self.lock:
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            status, code, extra = scripted
            return status, {"error": {"code": status, "message": f"scripted {code}", "status": code}}, extra
        if path.endswith(":publish"):
            count = len(json.loads(body)["messages"])
            with self.lock:
                first, self.ids = self.ids, self.ids + count
            return 200, {"messageIds": [str(first + n) for n in range(count)]}, {}
        if path.endswith(":pull"):
            return 200, {"receivedMessages": self.pull_messages}, {}
        return 200, {}, {}


class FakeSecretManager:
    """Secret Manager at the client library's boundary: installed in place of
    `google.cloud.secretmanager.SecretManagerServiceClient` (an instance is callable like the
    class, and counts the clients built). access_secret_version answers like the service, a real
    AccessSecretVersionResponse with payload.data and payload.data_crc32c, unless told otherwise:

    - `fail`: every access raises ServiceUnavailable (503), as an unreachable service does;
    - `stall`: seconds before each answer, bounded as the library bounds it by the call's
      `timeout=` (then DeadlineExceeded), or by the library's default 60 s when none is passed;
      `calm()` ends a stall in progress;
    - `corrupt` flips a bit of the data; `omit_crc` leaves data_crc32c unset.

    `accesses` lists the secret names asked for (one a call), `calls` each call's (name, timeout,
    whether a retry was given), `tries` the RPCs made, retries included.
    `state_path`: a JSON file of these settings, read before each access (how a test drives the
    fake inside a function server it runs as a subprocess); `log_path`: a file each access
    appends a line to (how it counts them there)."""

    LIBRARY_DEFAULT_TIMEOUT = 60.0

    def __init__(self, values: dict[str, str] | None = None, *, state_path: str | None = None,
                 log_path: str | None = None):
        self.values = dict(values or {})
        self.fail = False
        self.stall = 0.0
        self.corrupt = False
        self.omit_crc = False
        self.accesses: list[str] = []
        self.calls: list[tuple[str, float | None, bool]] = []
        self.tries = 0  # RPCs, retries included
        self.built: list[dict] = []
        self.state_path = state_path
        self.log_path = log_path
        self._lock = threading.Lock()
        self._calm = threading.Event()

    def __call__(self, **kwargs) -> FakeSecretManager:  # SecretManagerServiceClient(...)
        with self._lock:
            self.built.append(kwargs)
        return self

    def calm(self) -> None:
        self.stall = 0.0
        self._calm.set()
        self._calm = threading.Event()

    def _load_state(self) -> None:
        if self.state_path is None:
            return
        try:
            with open(self.state_path) as state:
                settings = json.load(state)
        except (OSError, ValueError):
            return
        for name in ("values", "fail", "stall", "corrupt", "omit_crc"):
            if name in settings:
                setattr(self, name, settings[name])

    def access_secret_version(self, request=None, *, timeout=None, retry=None, **kwargs):
        """One call as the library makes it: tries under `retry` (by default the library's own:
        UNAVAILABLE retried for 60 s), each bounded by `timeout` (by default 60 s)."""
        from google.api_core import exceptions
        from google.api_core import retry as retries

        self._load_state()
        name = request["name"]
        with self._lock:
            self.accesses.append(name)
            self.calls.append((name, timeout, retry is not None))
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(f"{time.time():.3f} {name}\n")
        if retry is None:
            retry = retries.Retry(predicate=retries.if_exception_type(exceptions.ServiceUnavailable),
                                  initial=1.0, maximum=10.0, multiplier=1.3, timeout=self.LIBRARY_DEFAULT_TIMEOUT)
        return retry(self._try)(name, self.LIBRARY_DEFAULT_TIMEOUT if timeout is None else float(timeout))

    def _try(self, name: str, timeout: float):
        from google.api_core import exceptions
        from google.cloud import secretmanager

        with self._lock:
            self.tries += 1
            calm = self._calm
        if self.stall:
            if not calm.wait(min(float(self.stall), timeout)) and self.stall >= timeout:
                raise exceptions.DeadlineExceeded("Deadline Exceeded")
        if self.fail:
            raise exceptions.ServiceUnavailable("secret manager unreachable")
        secret_id = name.split("/")[3]
        if secret_id not in self.values:
            raise exceptions.NotFound(f"Secret [{name}] not found or has no versions.")
        data = self.values[secret_id].encode()
        payload = secretmanager.SecretPayload(data=data)
        if not self.omit_crc:
            import google_crc32c

            payload.data_crc32c = google_crc32c.value(data)
        if self.corrupt:
            payload.data = data[:-1] + bytes([data[-1] ^ 1])  # one bit flipped on the way
        return secretmanager.AccessSecretVersionResponse(name=name.replace("latest", "1"), payload=payload)


class PubsubProxy(PubsubStandIn):
    """The Pub/Sub emulator behind a front end that can hang publish calls (`hang_publishes`,
    `hang_all_publishes()`, `unhang()`, as PubsubStandIn): every other call, and every publish
    not hung, is passed to the emulator at `emulator_host` and its answer passed back. A function
    server in a subprocess is pointed at it with PUBSUB_EMULATOR_HOST=proxy.host."""

    def __init__(self, emulator_host: str):
        import requests
        import requests.adapters

        self.upstream = f"http://{emulator_host}"
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
        super().__init__()

    def answer(self, method, path, headers, body):
        self._hang(path)
        forwarded = {name: value for name, value in headers.items() if name.lower() in ("content-type",)}
        response = self._session.request(method, self.upstream + path, data=body or None, headers=forwarded,
                                         timeout=30)
        return response.status_code, response.content, {"Content-Type": response.headers.get(
            "Content-Type", "application/json")}
