"""Publishing to our Pub/Sub topics and waiting until Pub/Sub confirmed every message.

One PublisherClient per process (it batches and is thread-safe). Callers hand over a list of
messages and get the message ids back only when all are confirmed; otherwise PublishError, and
the caller answers 503 (receive) or raises so Eventarc redelivers (send). A partial success
republished later is harmless: event ids are stable, and the Measurement API deduplicates
on transaction_id.
"""

from __future__ import annotations

import concurrent.futures
import threading

from google.cloud import pubsub_v1

from measure.message import Message

PUBLISH_TIMEOUT = 20.0  # seconds to wait for Pub/Sub's confirmation of a whole batch


class PublishError(RuntimeError):
    def __init__(self, topic: str, failed: int, total: int, cause: str):
        self.topic = topic
        self.failed = failed
        super().__init__(f"{failed} of {total} messages to {topic} not confirmed: {cause}")


class Publisher:
    def __init__(self, project: str, client: pubsub_v1.PublisherClient | None = None):
        self.project = project
        self.client = client or pubsub_v1.PublisherClient(
            # Small latency: receive waits for confirmation before answering, so batch briefly.
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_bytes=4 * 1024 * 1024, max_latency=0.005)
        )
        self._paths: dict[str, str] = {}
        self._lock = threading.Lock()

    def _path(self, topic: str) -> str:
        with self._lock:
            if topic not in self._paths:
                self._paths[topic] = self.client.topic_path(self.project, topic)
            return self._paths[topic]

    def publish(self, topic: str, messages: list[Message], timeout: float = PUBLISH_TIMEOUT) -> list[str]:
        """Publish every message and wait for all confirmations; PublishError if any failed."""
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

    def publish_one(self, topic: str, message: Message, timeout: float = PUBLISH_TIMEOUT) -> str:
        return self.publish(topic, [message], timeout)[0]
