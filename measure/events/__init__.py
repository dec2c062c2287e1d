"""Game events, as the webhook takes them: parse a body, validate and normalise each event, derive ids.

    body.py        the body of a webhook call: content types, limits, BodyError
    validation.py  one raw event -> one normalised Event, or every problem (InvalidEvents)
    ip.py          the player's address: global unicast only, compressed form
    ids.py         the id of an event sent without one
    event.py       the Event itself, as published to Pub/Sub
    fields.py      the field names, which are required, their lengths
    problems.py    Problem, BodyError, InvalidEvents: what a refused client is told

What an Event becomes at the Measurement API is measure.tune.params' business, not this package's:
events knows nothing of TUNE or Pub/Sub. Pure stdlib and cheap to import: this package is loaded
on every cold start of `receive`.
"""

from measure.events.body import FORM, JSON, MAX_BATCH, MAX_BODY_BYTES, NDJSON, parse_body
from measure.events.event import Event
from measure.events.fields import (
    CORE_FIELDS,
    DEFAULT_EVENT_NAME,
    FIELDS,
    MAX_EVENT_KEYS,
    MAX_FIELD_LENGTH,
    PASSTHROUGH_FIELDS,
    REQUIRED_FIELDS,
    site_key,
)
from measure.events.ids import derive_event_id
from measure.events.problems import BodyError, InvalidEvents, Problem
from measure.events.validation import DEFAULT_MAX_AGE, check, validate

__all__ = [
    "CORE_FIELDS",
    "DEFAULT_EVENT_NAME",
    "DEFAULT_MAX_AGE",
    "FIELDS",
    "FORM",
    "JSON",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "MAX_EVENT_KEYS",
    "MAX_FIELD_LENGTH",
    "NDJSON",
    "PASSTHROUGH_FIELDS",
    "REQUIRED_FIELDS",
    "BodyError",
    "Event",
    "InvalidEvents",
    "Problem",
    "check",
    "derive_event_id",
    "parse_body",
    "site_key",
    "validate",
]
