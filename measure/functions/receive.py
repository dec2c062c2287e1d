"""The webhook (`receive`): authenticate, validate, publish, and only then answer 202.

    POST / or /measure, Authorization: Bearer <token>
    form (one event), JSON (object or array), NDJSON (one object a line)
    POST /measure/debug: the same, but nothing is published: 200 with what each event would
    become (functions/debug.py)

A batch is all or nothing: one invalid event rejects the request with every problem listed by
index, and nothing of a rejected request is published. 202 comes only after Pub/Sub confirmed
every message; if publishing failed the answer is 503 with Retry-After, and a retry is safe
because event ids are stable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from measure import events, logs
from measure.config import Config
from measure.functions import debug
from measure.gcp.publisher import Publisher, PublishError
from measure.gcp.secrets import SecretUnavailableError
from measure.pipeline.message import event_message

if TYPE_CHECKING:
    from flask import Request

ROUTES = frozenset({"/", "/measure"})
DEBUG_ROUTE = "/measure/debug"
_ROUTE_PATHS = frozenset(route.rstrip("/") for route in ROUTES)  # "/measure/" is "/measure"
MAX_BODY_BYTES = events.MAX_BODY_BYTES  # the body's rule: measure.events owns it
RETRY_AFTER_S = 5
JSON = {"Content-Type": "application/json"}

Response = tuple[str, int, dict[str, str]]
# Which instance answered, on the "accepted" line: Cloud Run's revision and this process (Cloud
# Logging also labels each entry with the instance's own id; the dev stack has only this).
INSTANCE = f"{os.environ.get('K_REVISION', 'local')}:{os.getpid()}"


def user_key(user_id: str) -> str:
    """A user's pseudonymous key on log lines: enough to find their events, not to read the id."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


def error_response(status: int, error: str, message: str, problems: Iterable[events.Problem] = (),
                   headers: Mapping[str, str] | None = None) -> Response:
    body = {"error": error, "message": message, "problems": [p.to_dict() for p in problems]}
    return json.dumps(body), status, {**JSON, **(headers or {})}


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def token_valid(presented: str, valid: tuple[str, ...]) -> bool:
    """Compare with every valid token in constant time, without stopping at the first match."""
    presented_bytes = presented.encode()
    matched = False
    for token in valid:
        matched |= hmac.compare_digest(presented_bytes, token.encode())
    return matched


class Webhook:
    def __init__(
        self,
        config: Config,
        tokens: Callable[[], tuple[str, ...]],
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.tokens = tokens
        self.publisher = publisher
        self.clock = clock

    def handle(self, request: Request) -> Response:
        """One webhook call (a Flask request, as functions-framework hands it over)."""
        received = self.clock()
        path = request.path.rstrip("/")
        dry_run = path == DEBUG_ROUTE
        if path not in _ROUTE_PATHS and not dry_run:
            return error_response(404, "not_found", f"no such path {request.path!r}; post events to /measure")
        if request.method != "POST":
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed; use POST",
                                  headers={"Allow": "POST"})
        denied = self._authenticate(request.headers.get("Authorization"))
        if denied:
            return denied
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._too_large()
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return self._too_large()
        if dry_run:
            return self._debug(body, request.headers.get("Content-Type"))
        try:
            raw = events.parse_body(body, request.headers.get("Content-Type"))
            accepted = events.validate(raw, site_ids=self.config.site_ids, max_age=self.config.event_max_age,
                                       now=self.clock())
        except events.BodyError as exc:
            return error_response(exc.status, "invalid_body", str(exc), exc.problems)
        except events.InvalidEvents as exc:
            return error_response(400, "invalid_events", f"{exc.total} problem(s); nothing was accepted",
                                  exc.problems)
        try:
            self.publisher.publish(self.config.events_topic, [event_message(e) for e in accepted])
        except PublishError as exc:
            logs.error("publish failed; answered 503", component="receive", error=str(exc), events=len(accepted))
            return error_response(503, "unavailable", "events could not be queued; retry the same request "
                                   "(event ids are stable, so nothing is counted twice)",
                                   headers={"Retry-After": str(RETRY_AFTER_S)})
        ids = [e.event_id for e in accepted]
        # One line a request, not a line an event: a 1,000-event batch should not cost 1,000 log entries.
        # Every id is on it (and a pseudonymous key of each user, same order), so `python -m measure
        # status` finds any event's arrival: received (this request's start) and published (the line's time).
        logs.info("accepted", component="receive", events=len(ids), event_id=ids[0] if len(ids) == 1 else None,
                  event_name=accepted[0].event_name if len(ids) == 1 else None,
                  event_ids=ids if len(ids) > 1 else None, user_keys=[user_key(e.user_id) for e in accepted],
                  instance=INSTANCE, received=round(received, 3))
        return json.dumps({"accepted": len(ids), "event_ids": ids}), 202, JSON

    def _debug(self, body: bytes, content_type: str | None) -> Response:
        """/measure/debug: never publishes. A body /measure would refuse as malformed (400) is a
        200 naming the problem; 413 and 415 stay what they are on /measure."""
        try:
            raw = events.parse_body(body, content_type)
        except events.BodyError as exc:
            if exc.status != 400:
                return error_response(exc.status, "invalid_body", str(exc), exc.problems)
            answer = debug.body_report(exc)
        else:
            answer = debug.report(raw, self.config, self.clock())
        logs.info("debug", component="receive", events=len(answer["events"]), valid=answer["valid"],
                  problems=len(answer["problems"]))
        return json.dumps(answer), 200, JSON

    def _authenticate(self, header: str | None) -> Response | None:
        presented = bearer_token(header)
        challenge = {"WWW-Authenticate": 'Bearer realm="measure"'}
        if presented is None:
            return error_response(401, "unauthorized", "missing 'Authorization: Bearer <token>' header",
                                  headers=challenge)
        try:
            valid = self.tokens()
        except SecretUnavailableError:
            # Not logged here: measure.gcp.secrets logs each failed read once (one every few
            # seconds), where a line a request would flood the log while Secret Manager is down.
            return error_response(503, "unavailable", "cannot check tokens right now",
                                  headers={"Retry-After": str(RETRY_AFTER_S)})
        if not token_valid(presented, valid):
            return error_response(401, "unauthorized", "the Bearer token is not valid", headers=challenge)
        return None

    @staticmethod
    def _too_large() -> Response:
        return error_response(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes; split the batch",
                              [events.Problem(None, "body", f"larger than {MAX_BODY_BYTES} bytes")])
