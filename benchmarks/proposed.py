"""The code changes this benchmark recommends, applied as patches so they can be measured
side by side with main (`python -m benchmarks --proposed`); nothing here is deployed.

    receive  Publisher.publish: a list of messages goes out as one Publish RPC per 1,000
             (raw protobufs) instead of one client-library publish() per message.
    send     MeasurementClient.deliver: the body is encoded once (encode_post_params, which
             is also what is signed), signed directly instead of re-parsed by MeasureAuth, and
             POSTed through a urllib3.PoolManager instead of a requests.Session (no per-request
             cookie merge, proxy scan from the environment, hooks or re-preparation).
             PROPOSED_SEND=requests keeps the requests.Session (trust_env = False) instead.
    signing  sign(): HMAC's inner and outer SHA-256 states cached per key.
    sweep    Sweeper: 256 messages a pull, 64 attempts in flight (256 ÷ 64 × a 10 s read timeout
             stays inside the subscription's 60 s ack deadline).

Each is written as the lead would write it in measure/; see the report for file and function.
"""

from __future__ import annotations

import time

from benchmarks.signing import proposed_generate_signature


def apply() -> None:
    from measure import client, queue, signing, sweep

    # -- receive: one Publish RPC per batch ---------------------------------------------------
    original_publish = queue.Publisher.publish

    def publish(self, topic, messages, timeout=queue.PUBLISH_TIMEOUT):
        if len(messages) < 2:
            return original_publish(self, topic, messages, timeout)
        from google.pubsub_v1.types import PublishRequest, PubsubMessage

        message_pb, request_pb = PubsubMessage.pb(), PublishRequest.pb()
        path = self._path(topic)
        ids: list[str] = []
        try:
            for start in range(0, len(messages), 1000):
                request = request_pb(topic=path, messages=[message_pb(data=data, attributes=attributes)
                                                           for data, attributes in messages[start:start + 1000]])
                response = self.client.api.publish(request=PublishRequest.wrap(request), timeout=timeout)
                ids.extend(response.message_ids)
        except Exception as exc:
            raise queue.PublishError(topic, len(messages) - len(ids), len(messages), type(exc).__name__) from exc
        return ids

    queue.Publisher.publish = publish

    # -- signing: cached HMAC pads ------------------------------------------------------------
    signing.generate_signature = proposed_generate_signature

    # -- send: encode once, sign directly, no proxy scan ----------------------------------------
    import requests

    original_init = client.MeasurementClient.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.session.trust_env = False
        self._host, self._uri = signing.request_target(self.endpoint)

    def deliver(self, params):
        consumer_key, private_key = self.credentials()
        started = time.monotonic()
        post_params = signing.encode_post_params(params)
        timestamp = str(int(time.time()))
        signature = proposed_generate_signature(private_key, "POST", self._host, self._uri, timestamp, post_params)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   **signing.signing_headers(consumer_key, signature, timestamp)}
        try:
            response = self.session.post(self.endpoint, data=post_params[1:].encode(), headers=headers,
                                         timeout=self.timeout, allow_redirects=False)
            body = response.content
        except requests.Timeout:
            return client.unreachable("timeout", time.monotonic() - started)
        except requests.ConnectionError as exc:
            return client.unreachable(f"connection error: {type(exc).__name__}", time.monotonic() - started)
        except requests.RequestException as exc:
            return client.unreachable(f"request failed: {type(exc).__name__}", time.monotonic() - started)
        return client.classify(response.status_code, response.headers, body, time.monotonic() - started)

    import os

    import urllib3

    def init_urllib3(self, endpoint, credentials, *, connect_timeout=client.CONNECT_TIMEOUT,
                     read_timeout=client.READ_TIMEOUT, pool_size=64):
        self.endpoint = client.check_endpoint(endpoint)
        self.credentials = credentials
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, retries=False, timeout=self.timeout)
        self._host, self._uri = signing.request_target(self.endpoint)

    def deliver_urllib3(self, params):
        consumer_key, private_key = self.credentials()
        started = time.monotonic()
        post_params = signing.encode_post_params(params)
        timestamp = str(int(time.time()))
        signature = proposed_generate_signature(private_key, "POST", self._host, self._uri, timestamp, post_params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "measure/0.1 (+server-to-server)",
                   **signing.signing_headers(consumer_key, signature, timestamp)}
        try:
            response = self.pool.request("POST", self.endpoint, body=post_params[1:].encode(), headers=headers,
                                         redirect=False)
        except urllib3.exceptions.TimeoutError:
            return client.unreachable("timeout", time.monotonic() - started)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.NewConnectionError, OSError) as exc:
            return client.unreachable(f"connection error: {type(exc).__name__}", time.monotonic() - started)
        except urllib3.exceptions.HTTPError as exc:
            return client.unreachable(f"request failed: {type(exc).__name__}", time.monotonic() - started)
        return client.classify(response.status, response.headers, response.data, time.monotonic() - started)

    def close(self):
        self.pool.clear()

    if os.environ.get("PROPOSED_SEND") == "requests":
        client.MeasurementClient.__init__ = init
        client.MeasurementClient.deliver = deliver
    else:
        client.MeasurementClient.__init__ = init_urllib3
        client.MeasurementClient.deliver = deliver_urllib3
        client.MeasurementClient.close = close

    # -- sweep: bigger pulls, more in flight ------------------------------------------------------
    original_sweeper_init = sweep.Sweeper.__init__

    def sweeper_init(self, *args, **kwargs):
        kwargs["parallelism"] = 64
        original_sweeper_init(self, *args, **kwargs)
        self.batch_size = 256

    sweep.Sweeper.__init__ = sweeper_init
