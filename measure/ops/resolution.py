"""How TUNE's tracking engine resolves a Measurement API call to an event definition.

From the seed's "Best Practices for Event Measurement API" and "Potential Conflicts":

1. A pre-defined action (`action=login`) looks for an event of that type whose ref equals the
   action's ref; failing that, the single event of that type ("Signing In" of type login).
2. A call that does not match a type looks for an event with a matching ref. For a custom
   event (`action=conversion`) the ref is derived from `site_event_name`; `site_event_id`
   names the event directly. Any other action is matched by its own ref (`action=login2`).
3. If nothing matches, the engine defines a new event (next id, the name, its ref, its type).

Two mismatches are legal but surprising, so they are reported as warnings: a pre-defined action
whose configured event (same ref) has another type, and a custom event configured with a type
other than the call's. A ref is the name lower-cased with everything but letters and digits
removed: "Signing In" -> "signingin".

Which call an event makes is `measure.tune.params.action_params`, the function `send` and
/measure/debug use: `event_call` applies it to a webhook event (event_name, site_event_id,
event_ref), so the explainer resolves exactly the call that is sent.

`resolve` is pure: it never changes the definitions it is given. A caller that wants created
events remembered (the sandbox does) appends `Resolution.event` when `created` is true.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from measure.events import DEFAULT_EVENT_NAME
from measure.tune.params import CUSTOM_ACTION, INSTALL_EVENT, PREDEFINED_EVENTS, action_params

# The 17 pre-defined event actions of docs/design.md (one list, kept in measure.tune.params), plus
# session and install (the seed's install examples).
PREDEFINED_ACTIONS = ("session", INSTALL_EVENT, *PREDEFINED_EVENTS)
# Custom events are called with action=conversion; their type has the same name.
CUSTOM_TYPE = "conversion"
EVENT_TYPES = frozenset((*PREDEFINED_ACTIONS, CUSTOM_TYPE))
# TUNE's UI calls the custom type "Event" in its Event Type drop-down.
_TYPE_ALIASES = {"event": CUSTOM_TYPE, "custom": CUSTOM_TYPE}
_DEFINITION_FIELDS = ("id", "name", "type")
_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")

MATCHED_BY_TYPE_AND_REF = "type+ref"
MATCHED_BY_TYPE = "type"
MATCHED_BY_REF = "ref"
MATCHED_BY_ID = "id"
MATCHED_BY_NEW = "new"


class DefinitionsError(ValueError):
    """An event definitions file that cannot be used; the message names the entry and field."""


class ResolutionError(ValueError):
    """A call that cannot be resolved to any event (TUNE would refuse it)."""


class MissingActionError(ResolutionError):
    def __init__(self) -> None:
        super().__init__("the call has no action")


class MissingEventNameError(ResolutionError):
    def __init__(self) -> None:
        super().__init__("action=conversion needs site_event_name or site_event_id")


class InvalidEventIdError(ResolutionError):
    def __init__(self, value: str):
        super().__init__(f"site_event_id {value!r} is not a positive whole number")


class UnknownEventIdError(ResolutionError):
    def __init__(self, event_id: int):
        self.event_id = event_id
        super().__init__(f"site_event_id {event_id} matches no configured event")


class EmptyRefError(ResolutionError):
    def __init__(self, what: str, value: str):
        super().__init__(f"{what} {value!r} has no letters or digits, so it has no event ref")


def event_ref(name: str) -> str:
    """The ref TUNE derives from an event name: lower-cased, letters and digits only."""
    return _NOT_ALPHANUMERIC.sub("", name.lower())


@dataclass(frozen=True)
class EventDefinition:
    """An event as configured in the MAT platform (or created by the engine)."""

    id: int
    name: str
    type: str

    @property
    def ref(self) -> str:
        return event_ref(self.name)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "ref": self.ref, "type": self.type}

    def describe(self) -> str:
        return f'"{self.name}" (id {self.id}, ref {self.ref}, type {self.type})'


@dataclass
class Resolution:
    """Which event a call lands on, how it was found, and anything the user should check."""

    call: str
    event: EventDefinition
    created: bool
    matched_by: str
    warnings: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "event": self.event.as_dict(),
            "created": self.created,
            "matched_by": self.matched_by,
            "warnings": list(self.warnings),
        }

    def explain(self) -> str:
        lines = [f"API call: {self.call}"]
        lines += [f"  {number}. {step}" for number, step in enumerate(self.steps, 1)]
        if self.created:
            lines.append(f"Result: a new event {self.event.describe()} is created automatically")
        else:
            lines.append(f"Result: event {self.event.describe()}, matched by {self.matched_by}")
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  - {warning}" for warning in self.warnings]
        return "\n".join(lines)


def normalise_type(value: str) -> str:
    """An event type as the engine names it: "Add To Cart" -> add_to_cart, "Event" -> conversion."""
    name = re.sub(r"[\s-]+", "_", value.strip().lower())
    return _TYPE_ALIASES.get(name, name)


def parse_definitions(data: object, source: str = "definitions") -> list[EventDefinition]:
    """Event definitions from decoded JSON: a list of {"id": int, "name": str, "type": str}."""
    if not isinstance(data, list):
        raise DefinitionsError(f'{source}: expected a JSON list of {{"id", "name", "type"}} objects')
    definitions: list[EventDefinition] = []
    entry_of_id: dict[int, int] = {}
    entry_of_key: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(data):
        where = f"{source}: entry {index}"
        if not isinstance(entry, dict):
            raise DefinitionsError(f"{where}: expected an object with id, name and type")
        unknown = sorted(set(entry) - set(_DEFINITION_FIELDS))
        if unknown:
            raise DefinitionsError(f"{where}: unknown field {unknown[0]!r} (allowed: id, name, type)")
        name = entry.get("name")
        if isinstance(name, str) and name.strip():
            where = f'{where} ("{name}")'
        for field_name in _DEFINITION_FIELDS:
            if field_name not in entry:
                raise DefinitionsError(f"{where}: field {field_name!r} is missing")
        event_id, type_ = entry["id"], entry["type"]
        if isinstance(event_id, bool) or not isinstance(event_id, int) or event_id < 1:
            raise DefinitionsError(f"{where}: field 'id' must be a positive whole number, not {event_id!r}")
        if event_id in entry_of_id:
            raise DefinitionsError(f"{where}: field 'id' {event_id} is already used by entry {entry_of_id[event_id]}")
        if not isinstance(name, str) or not event_ref(name):
            raise DefinitionsError(f"{where}: field 'name' must be text with letters or digits, not {name!r}")
        if not isinstance(type_, str) or normalise_type(type_) not in EVENT_TYPES:
            allowed = ", ".join(sorted(EVENT_TYPES))
            raise DefinitionsError(f"{where}: field 'type' {type_!r} is not an event type (one of: {allowed})")
        event = EventDefinition(event_id, name.strip(), normalise_type(type_))
        key = (event.ref, event.type)
        if key in entry_of_key:
            raise DefinitionsError(
                f"{where}: field 'name' has the same ref {event.ref!r} and type as entry {entry_of_key[key]}; "
                "the tracking engine could not tell them apart"
            )
        entry_of_id[event_id] = index
        entry_of_key[key] = index
        definitions.append(event)
    return definitions


def load_definitions(path: str | Path) -> list[EventDefinition]:
    """Event definitions from a JSON file (see `parse_definitions`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise DefinitionsError(f"{path}: cannot read: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise DefinitionsError(f"{path}: not UTF-8 text") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise DefinitionsError(f"{path}: not valid JSON: {error.msg} at {where}") from error
    return parse_definitions(data, str(path))


def resolve(params: Mapping[str, str], definitions: Iterable[EventDefinition]) -> Resolution:
    """The event a call's parameters resolve to, by the seed's rules (see the module doc)."""
    action = (params.get("action") or "").strip().lower()
    if not action:
        raise MissingActionError()
    events = sorted(definitions, key=lambda event: event.id)
    if action == CUSTOM_ACTION:
        return _resolve_custom(params, events)
    if action in PREDEFINED_ACTIONS:
        return _resolve_predefined(action, events)
    return _resolve_other(action, events)


def event_call(raw: Mapping[str, object]) -> dict[str, str]:
    """The action parameters `send` makes of a webhook event (its event_name, site_event_id and
    event_ref; the other fields do not change which event is recorded)."""
    extras = {name: str(raw[name]).strip() for name in ("site_event_id", "event_ref")
              if raw.get(name) not in (None, "")}
    return action_params(str(raw.get("event_name", DEFAULT_EVENT_NAME)), extras)


def explain_text(params: Mapping[str, str], definitions: Iterable[EventDefinition]) -> str:
    """`resolve(...).explain()`: how the engine would treat this call, step by step."""
    return resolve(params, definitions).explain()


def _new_event(name: str, type_: str, events: list[EventDefinition]) -> EventDefinition:
    return EventDefinition(max((event.id for event in events), default=0) + 1, name, type_)


def _resolve_predefined(action: str, events: list[EventDefinition]) -> Resolution:
    ref = event_ref(action)
    call = f"action={action}"
    steps = [f'{call} is a pre-defined event: look for an event of type {action} whose ref is "{ref}"']
    warnings: list[str] = []
    of_type = [event for event in events if event.type == action]
    exact = [event for event in of_type if event.ref == ref]
    same_ref_other_type = [event for event in events if event.ref == ref and event.type != action]

    if exact:
        event, matched_by = exact[0], MATCHED_BY_TYPE_AND_REF
        steps.append(f"found {event.describe()}")
    elif len(of_type) == 1:
        event, matched_by = of_type[0], MATCHED_BY_TYPE
        steps.append(f'no event of type {action} has ref "{ref}"; {event.describe()} is the only one of that type')
    elif of_type:
        # The seed only covers a single event of the type; with several, take the oldest and say so.
        event, matched_by = of_type[0], MATCHED_BY_TYPE
        steps.append(f'{len(of_type)} events have type {action} and none has ref "{ref}"; using the first')
        names = ", ".join(f'"{other.name}"' for other in of_type)
        warnings.append(
            f"Ambiguous: {call} matches several events of type {action} ({names}) and none is named "
            f'"{action}"; the sandbox uses the one with the lowest id, the real engine may not.'
        )
    elif same_ref_other_type:
        event, matched_by = same_ref_other_type[0], MATCHED_BY_REF
        steps.append(f'no event has type {action}; look for an event whose ref is "{ref}"')
        steps.append(f"found {event.describe()}")
    else:
        steps.append(f'no event has type {action} or ref "{ref}"')
        event = _new_event(action, action, events)
        steps.append(f"define a new event {event.describe()}")
        return Resolution(call, event, True, MATCHED_BY_NEW, warnings, steps)

    for other in same_ref_other_type:
        used = "records the call against it" if other == event else f'uses "{event.name}" instead'
        warnings.append(
            f'Potential conflict: {call} is the pre-defined {action} event, but the configured event "{other.name}" '
            f"(id {other.id}) with the same ref has type {other.type}; the engine {used}. "
            f"Change its type to {action}, or rename it."
        )
    return Resolution(call, event, False, matched_by, warnings, steps)


def _resolve_custom(params: Mapping[str, str], events: list[EventDefinition]) -> Resolution:
    raw_id = (params.get("site_event_id") or "").strip()
    name = (params.get("site_event_name") or "").strip()
    parts = [f"action={CUSTOM_ACTION}"]
    if raw_id:
        parts.append(f"site_event_id={raw_id}")
    if name:
        parts.append(f"site_event_name={name}")
    call = "&".join(parts)
    steps: list[str] = []
    warnings: list[str] = []

    if raw_id:
        if not raw_id.isascii() or not raw_id.isdigit() or int(raw_id) < 1:
            raise InvalidEventIdError(raw_id)
        event_id = int(raw_id)
        by_id = [event for event in events if event.id == event_id]
        steps.append(f"site_event_id={event_id} names the event directly")
        if by_id:
            event = by_id[0]
            steps.append(f"found {event.describe()}")
            if name and event_ref(name) != event.ref:
                warnings.append(
                    f'site_event_name "{name}" does not match event {event_id} "{event.name}"; site_event_id wins.'
                )
            _warn_custom_type(call, event, warnings)
            return Resolution(call, event, False, MATCHED_BY_ID, warnings, steps)
        if not name:
            raise UnknownEventIdError(event_id)
        steps.append(f"no event has id {event_id}; fall back to site_event_name")
        warnings.append(f"site_event_id {event_id} matches no configured event; site_event_name was used instead.")

    if not name:
        raise MissingEventNameError()
    ref = event_ref(name)
    if not ref:
        raise EmptyRefError("site_event_name", name)
    steps.append(f'custom event: look for an event whose ref is "{ref}" (from site_event_name "{name}")')
    matches = [event for event in events if event.ref == ref]
    typed = [event for event in matches if event.type == CUSTOM_TYPE]
    if typed:
        event = typed[0]
        steps.append(f"found {event.describe()}")
        return Resolution(call, event, False, MATCHED_BY_TYPE_AND_REF, warnings, steps)
    if matches:
        event = matches[0]
        steps.append(f"found {event.describe()}")
        _warn_custom_type(call, event, warnings)
        return Resolution(call, event, False, MATCHED_BY_REF, warnings, steps)
    event = _new_event(name, CUSTOM_TYPE, events)
    steps.append(f'no event has ref "{ref}"; define a new event {event.describe()}')
    return Resolution(call, event, True, MATCHED_BY_NEW, warnings, steps)


def _warn_custom_type(call: str, event: EventDefinition, warnings: list[str]) -> None:
    if event.type != CUSTOM_TYPE:
        warnings.append(
            f'Potential conflict: {call} is a custom event, but the configured event "{event.name}" (id {event.id}) '
            f"has type {event.type}; the engine records the call as a {event.type}. If that is not intended, "
            f"change the event's type to {CUSTOM_TYPE} (\"Event\" in the MAT platform)."
        )


def _resolve_other(action: str, events: list[EventDefinition]) -> Resolution:
    ref = event_ref(action)
    if not ref:
        raise EmptyRefError("action", action)
    call = f"action={action}"
    steps = [f'{call} is not a pre-defined event: look for an event whose ref is "{ref}"']
    matches = [event for event in events if event.ref == ref]
    if matches:
        event = matches[0]
        steps.append(f"found {event.describe()}")
        return Resolution(call, event, False, MATCHED_BY_REF, [], steps)
    event = _new_event(action, CUSTOM_TYPE, events)
    steps.append(f'no event has ref "{ref}"; define a new event {event.describe()}')
    warnings = [
        f"{call} is neither a pre-defined event nor configured; it was created as a custom event. "
        f"Custom events are normally sent as action={CUSTOM_ACTION}&site_event_name={action}."
    ]
    return Resolution(call, event, True, MATCHED_BY_NEW, warnings, steps)
