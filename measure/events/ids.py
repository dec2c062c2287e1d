"""The id of an event sent without one: derived from its normalised fields, so a telemetry server
that retries the same event gets the same id, and the Measurement API the same transaction_id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

_PREFIX = b"measure.event.v1\n"
# json.dumps(..., sort_keys=True, separators=(",", ":")) with the encoder built once, not a call
# (and no check for circular references: the values are strings).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, check_circular=False)


def derive_event_id(fields: Mapping[str, object]) -> str:
    """A deterministic id for an event without one: 32 hex characters of sha256.

    Hashes a canonical JSON of the normalised fields (any `event_id` key left out, values as
    strings, so int and digit-string time stamps agree). `derive_event_id(event.to_dict())` gives
    a derived event its own id back. Changing this changes every derived id: don't.
    """
    canonical = {str(name): str(value) for name, value in fields.items() if name != "event_id"}
    return hashlib.sha256(_PREFIX + _CANONICAL.encode(canonical).encode("ascii")).hexdigest()[:32]
