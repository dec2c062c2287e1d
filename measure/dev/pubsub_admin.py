"""Creating topics and subscriptions over Pub/Sub's REST API, for the local topology (`make run`,
the tests, the benchmarks) on the emulator, over the functions' own REST client (measure.gcp).
A tool, never shipped: terraform creates the real ones.

Each create is idempotent: an existing resource (409 ALREADY_EXISTS) is kept, and an existing
push subscription is re-pointed at the endpoint asked for.
"""

from __future__ import annotations

from measure.gcp import googleapi
from measure.gcp.subscriber import CALL_TIMEOUT

RETENTION_S = 7 * 86400  # as terraform keeps measure-events' messages


def create_topic(api: googleapi.Api, topic: str) -> bool:
    """Create `projects/P/topics/T`; False when it already existed."""
    return _create(api, f"/v1/{topic}", {}, f"create topic {topic}")


def create_subscription(api: googleapi.Api, subscription: str, topic: str, *, ack_deadline_seconds: int | None = None,
                        push_endpoint: str | None = None, retain_acked_messages: bool = False) -> bool:
    """Create `projects/P/subscriptions/S` on `topic`; False when it already existed (then a push
    subscription's endpoint is set to `push_endpoint`). `retain_acked_messages` keeps what was
    acknowledged for the retention period, so a seek to a time can deliver it again (replay)."""
    body: dict = {"topic": topic}
    if retain_acked_messages:
        body["retainAckedMessages"] = True
        body["messageRetentionDuration"] = f"{RETENTION_S}s"
    if ack_deadline_seconds is not None:
        body["ackDeadlineSeconds"] = ack_deadline_seconds
    if push_endpoint:
        body["pushConfig"] = {"pushEndpoint": push_endpoint}
    created = _create(api, f"/v1/{subscription}", body, f"create subscription {subscription}")
    if not created and push_endpoint:
        api.call("POST", f"/v1/{subscription}:modifyPushConfig", {"pushConfig": body["pushConfig"]},
                 timeout=CALL_TIMEOUT, what=f"modify push config of {subscription}")
    return created


def _create(api: googleapi.Api, path: str, body: dict, what: str) -> bool:
    try:
        api.call("PUT", path, body, timeout=CALL_TIMEOUT, what=what)
    except googleapi.ApiError as error:
        if error.status == 409 and not error.transient:  # ALREADY_EXISTS
            return False
        raise
    return True
