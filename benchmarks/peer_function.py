"""The idiomatic peer of receive: the webhook as Google's Cloud Functions samples write it.

A global `pubsub_v1.PublisherClient` built when the module loads, `publish(...).result()` for every
event before answering 202, and the webhook tokens read once with `SecretManagerServiceClient`
(`access_secret_version` on `versions/latest`) unless they are given locally. The event work is
measure's own (the same parsing, validation and message encoding as receive), so the rows beside
it compare the Google side of the two, not the validation.
"""

import json

import functions_framework
from google.cloud import pubsub_v1

from measure import config, events
from measure.functions.receive import bearer_token, token_valid
from measure.pipeline.message import event_message

JSON = {"Content-Type": "application/json"}

settings = config.load()
publisher = pubsub_v1.PublisherClient()
topic_path = publisher.topic_path(settings.project, settings.events_topic)
tokens = None


def webhook_tokens():
    global tokens
    if tokens is None:
        raw = settings.webhook_tokens
        if not raw:
            from google.cloud import secretmanager

            client = secretmanager.SecretManagerServiceClient()
            name = f"projects/{settings.project}/secrets/{settings.webhook_tokens_secret}/versions/latest"
            raw = client.access_secret_version(request={"name": name}).payload.data.decode("utf-8")
        tokens = tuple(line.strip() for line in raw.splitlines() if line.strip())
    return tokens


@functions_framework.http
def peer(request):
    presented = bearer_token(request.headers.get("Authorization"))
    if presented is None or not token_valid(presented, webhook_tokens()):
        return json.dumps({"error": "unauthorized"}), 401, JSON
    try:
        raw = events.parse_body(request.get_data(), request.headers.get("Content-Type"))
        accepted = events.validate(raw, site_ids=settings.site_ids, max_age=settings.event_max_age)
    except (events.BodyError, events.InvalidEvents) as exc:
        return json.dumps({"error": str(exc)}), 400, JSON
    futures = [publisher.publish(topic_path, data, **attributes) for data, attributes in map(event_message, accepted)]
    for future in futures:
        future.result()
    return json.dumps({"accepted": len(accepted), "event_ids": [e.event_id for e in accepted]}), 202, JSON
