"""Schemathesis hooks for tests/test_openapi.py (loaded through SCHEMATHESIS_HOOKS): how to put
an NDJSON body on the wire, which schemathesis does not know by itself."""

import json
import time

import schemathesis


@schemathesis.serializer("application/x-ndjson", "application/jsonl")
def ndjson(ctx, value):
    """One JSON value a line; a generated non-array (negative testing) is one line."""
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item, ensure_ascii=False) for item in items).encode("utf-8", "surrogatepass")


VALID_ENOUGH = {"ip": "175.124.248.15", "platform": "pc", "storefront": "steam"}


def _current(event):
    """Give a generated event a current time, a public address and a configured site, so that
    schema-valid bodies are accepted (and the 202 answer checked) rather than all refused for
    what no schema can say: the time window, global unicast, MEASURE_SITE_IDS."""
    if not isinstance(event, dict) or len(repr(event)) % 3 == 0:  # a third keep their generated values
        return event
    fixed = dict(event)
    for name, value in VALID_ENOUGH.items():
        if name in fixed:
            fixed[name] = value
    if "time_stamp" in fixed:
        now = int(time.time())
        fixed["time_stamp"] = str(now) if isinstance(fixed["time_stamp"], str) else now
    return fixed


@schemathesis.hook
def map_body(context, body):
    if isinstance(body, list):
        return [_current(event) for event in body]
    return _current(body)
