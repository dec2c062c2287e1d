"""Publishing to our Pub/Sub topics and waiting until Pub/Sub confirmed every message.

One PublisherClient per process (thread-safe). Callers hand over a list of messages and get the
message ids back only when all are confirmed; otherwise PublishError, and the caller answers 503
(receive) or raises so Eventarc redelivers (send). A partial success republished later is
harmless: event ids are stable, and the Measurement API deduplicates on transaction_id.

A single message goes through the client's own batching (it merges concurrent requests'
messages); a batch of two or more is sent as one Publish call per 1,000 messages, already
confirmed when the call returns. The benchmark profile showed the client's per-message futures
and batch threads costing about 100 µs of CPU a message, against about 8 µs this way.
"""

from __future__ import annotations

import concurrent.futures
import threading

from measure.message import Message

PUBLISH_TIMEOUT = 20.0  # seconds to wait for Pub/Sub's confirmation of a whole batch
MAX_PER_CALL = 1000  # Pub/Sub's limit of messages in one Publish request


class PublishError(RuntimeError):
    def __init__(self, topic: str, failed: int, total: int, cause: str):
        self.topic = topic
        self.failed = failed
        super().__init__(f"{failed} of {total} messages to {topic} not confirmed: {cause}")


class Publisher:
    def __init__(self, project: str, client=None):
        self.project = project
        self._client = client
        self._paths: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def client(self):
        # Built on first publish: importing the Pub/Sub client is most of a cold start, and a
        # send that only delivers never needs it.
        with self._lock:
            if self._client is None:
                from google.cloud import pubsub_v1

                self._client = pubsub_v1.PublisherClient(
                    # receive waits for the confirmation before answering, so batch only briefly.
                    batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.005)
                )
            return self._client

    def _path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            path = self._paths[topic] = f"projects/{self.project}/topics/{topic}"
        return path

    def publish(self, topic: str, messages: list[Message], timeout: float = PUBLISH_TIMEOUT) -> list[str]:
        """Publish every message and wait for all confirmations; PublishError if any failed."""
        if len(messages) > 1:
            return self._publish_batch(topic, messages, timeout)
        path = self._path(topic)
        try:
            futures = [self.client.publish(path, data, **attributes) for data, attributes in messages]
        except Exception as exc:
            raise PublishError(topic, len(messages), len(messages), type(exc).__name__) from exc
        done, pending = concurrent.futures.wait(futures, timeout=timeout)
        failures = [f.exception() for f in done if f.exception() is not None]
        if pending or failures:
            cause = "timed out" if pending else type(failures[0]).__name__
            raise PublishError(topic, len(pending) + len(failures), len(messages), cause)
        return [f.result() for f in futures]

    def _publish_batch(self, topic: str, messages: list[Message], timeout: float) -> list[str]:
        from google.pubsub_v1.types import PublishRequest, PubsubMessage

        path = self._path(topic)
        message_pb, request_pb = PubsubMessage.pb(), PublishRequest.pb()
        ids: list[str] = []
        try:
            for start in range(0, len(messages), MAX_PER_CALL):
                chunk = messages[start:start + MAX_PER_CALL]
                request = request_pb(topic=path, messages=[message_pb(data=data, attributes=attributes)
                                                           for data, attributes in chunk])
                response = self.client.api.publish(request=PublishRequest.wrap(request), timeout=timeout)
                ids.extend(response.message_ids)
        except Exception as exc:
            raise PublishError(topic, len(messages) - len(ids), len(messages), type(exc).__name__) from exc
        return ids

    def publish_one(self, topic: str, message: Message, timeout: float = PUBLISH_TIMEOUT) -> str:
        return self.publish(topic, [message], timeout)[0]
