"""The validated, normalised event: what is published to Pub/Sub and read back by send and sweep."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from measure.events.fields import CORE_FIELDS, OPTIONAL_FIELDS
from measure.events.problems import InvalidEvents, Problem, clip, kind

_CORE = frozenset(CORE_FIELDS)
_OPTIONAL = frozenset(OPTIONAL_FIELDS)


@dataclass(frozen=True, slots=True)
class Event:
    """A validated, normalised event: what is published to Pub/Sub and mapped to one API request."""

    event_id: str
    event_name: str
    user_id: str
    ip: str
    time_stamp: int
    platform: str
    storefront: str
    # The optional fields given (fields.OPTIONAL_FIELDS: the pass-through Measurement API parameters
    # and event_ref), as strings. Read-only; left out of the hash so events can go in sets.
    extras: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe and flat: the core fields, then the extras under their own names."""
        fields = {
            "event_id": self.event_id,
            "event_name": self.event_name,
            "user_id": self.user_id,
            "ip": self.ip,
            "time_stamp": self.time_stamp,
            "platform": self.platform,
            "storefront": self.storefront,
        }
        fields.update(self.extras)
        return fields

    @classmethod
    def from_dict(cls, d: object) -> Event:
        """Inverse of to_dict, for messages read back from Pub/Sub.

        Checks shape and types only: values were validated at the webhook, and the age of an
        event waiting in a retry queue must not make it invalid.
        """
        if not isinstance(d, Mapping):
            raise InvalidEvents([Problem(None, "event", f"must be an object, not {kind(d)}")])
        problems: list[Problem] = []
        for name in CORE_FIELDS:
            if name not in d:
                problems.append(Problem(None, name, "is missing"))
                continue
            value = d[name]
            if name == "time_stamp":
                if isinstance(value, bool) or not isinstance(value, int):
                    problems.append(Problem(None, name, f"must be an integer, not {kind(value)}"))
            elif not isinstance(value, str):
                problems.append(Problem(None, name, f"must be a string, not {kind(value)}"))
        for name, value in d.items():
            if name in _CORE:
                continue
            if name not in _OPTIONAL:
                problems.append(Problem(None, clip(str(name)), "is not a known field"))
            elif not isinstance(value, str):
                problems.append(Problem(None, name, f"must be a string, not {kind(value)}"))
        if problems:
            raise InvalidEvents(problems)
        extras = {name: d[name] for name in OPTIONAL_FIELDS if name in d}
        return cls(**{name: d[name] for name in CORE_FIELDS}, extras=extras)
