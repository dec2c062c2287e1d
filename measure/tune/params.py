"""What an event becomes at the Measurement API: the action, and every parameter `send` signs and POSTs.

`send` (through delivery), the webhook's debug endpoint and the resolution explainer
(`python -m measure explain`) build the action with the same function, `action_params`, so what
/measure/debug shows and what the explainer resolves is what is signed.

    event_ref=login2                  -> action=login2          (an event defined in TUNE, by its ref)
    site_event_id=7                   -> action=conversion&site_event_id=7
                                         (+ site_event_name=<event_name> when that is a custom name)
    event_name=install                -> action=install
    game_open and other session names -> action=session
    the 17 pre-defined names          -> action=<name>
    any other name                    -> action=conversion&site_event_name=<name>
"""

from __future__ import annotations

from collections.abc import Mapping

from measure.events import Event

SESSION_EVENTS: frozenset[str] = frozenset({"game_open", "session", "app_open", "open", "session_start"})
# The seed's Python and Java examples measure an install with action=install.
INSTALL_EVENT = "install"
CUSTOM_ACTION = "conversion"
# The Measurement API's pre-defined actions, in docs/design.md's order.
PREDEFINED_EVENTS: tuple[str, ...] = (
    "registration",
    "login",
    "add_to_wishlist",
    "add_to_cart",
    "added_payment_info",
    "reservation",
    "checkout_initiated",
    "purchase",
    "search",
    "content_view",
    "tutorial_complete",
    "level_achieved",
    "achievement_unlocked",
    "spent_credits",
    "invite",
    "rated",
    "share",
)
_PREDEFINED = frozenset(PREDEFINED_EVENTS)
# Names whose action is their own (or session's): an event_ref equal to one of them calls that
# action, not an event of the user's.
RESERVED_ACTIONS: frozenset[str] = frozenset({"session", INSTALL_EVENT, CUSTOM_ACTION, *PREDEFINED_EVENTS})

# The parameters measure sets itself on every request.
REQUEST_PARAMETERS: tuple[str, ...] = (
    "action", "site_event_name", "advertiser_id", "site_id", "sdk", "response_format", "user_id", "device_ip",
    "system_date", "transaction_id",
)
# The optional parameters of the Measurement API's server-to-server session and event calls that an
# event may carry: the seed's examples (004_55375504142fdfcd.txt) and the URL keys TUNE's SDKs send
# (measure/events/fields.py names the files). measure.events' PASSTHROUGH_FIELDS are the ones the
# webhook accepts; /measure/debug warns of any it passes that are not in here.
API_PARAMETERS: frozenset[str] = frozenset({
    "revenue", "currency_code", "advertiser_ref_id", "user_agent", "country_code", "app_version", "app_name",
    "package_name", "language", "os_version", "device_brand", "device_model", "device_carrier", "ios_ifa",
    "ios_ifv", "ios_ad_tracking_disabled", "google_aid", "google_ad_tracking_disabled", "fire_aid",
    "fire_ad_tracking_disabled", "existing_user", "is_paying_user", "is_coppa", "site_event_id",
    "attribute_sub1", "attribute_sub2", "attribute_sub3", "attribute_sub4", "attribute_sub5",
    "content_type", "content_id", "quantity", "rating", "search_string", "level", "date1", "date2",
})
# Each advertising id and the flag that says its user limited ad tracking (1 = limited).
AD_TRACKING_FLAGS: Mapping[str, str] = {
    "ios_ifa": "ios_ad_tracking_disabled",
    "google_aid": "google_ad_tracking_disabled",
    "fire_aid": "fire_ad_tracking_disabled",
}
# Event fields that shape the action and are not parameters of their own.
_ACTION_FIELDS = frozenset({"event_ref"})

# The types TUNE may answer (`site_event_type`) for a call of each action without a conflict. A
# session is "installs and opens" (seed 004's first line), so TUNE may type it either way.
_SESSION_TYPES = frozenset({"session", "install", "open"})


def action_for(event_name: str) -> tuple[str, str | None]:
    """(action, site_event_name) of an event name: session events, install and pre-defined names
    match case-insensitively; any other name is a custom event, sent as a conversion under the
    user's own spelling."""
    key = event_name.strip().lower()
    if key in SESSION_EVENTS:
        return "session", None
    if key == INSTALL_EVENT or key in _PREDEFINED:
        return key, None
    return CUSTOM_ACTION, event_name


def action_params(event_name: str, extras: Mapping[str, str]) -> dict[str, str]:
    """The parameters that say which event a call records (the module doc's table): `action`, and
    `site_event_name` or `site_event_id` for a custom event."""
    ref = extras.get("event_ref")
    if ref:
        return {"action": ref}
    action, site_event_name = action_for(event_name)
    params = {"action": action}
    event_id = extras.get("site_event_id")
    if event_id:
        # The event's id names it; a custom name goes along, which TUNE falls back on when the id
        # matches no event (seed 004: "reference the event ID or name").
        params = {"action": CUSTOM_ACTION, "site_event_id": event_id}
    if site_event_name is not None:
        params["site_event_name"] = site_event_name
    return params


def to_params(event: Event, *, advertiser_id: str, site_id: str) -> dict[str, str]:
    """The Measurement API parameters of one event, all strings, ready to sign and POST.

    `system_date` is the event's own time and `transaction_id` its id, so a retry days later is
    the same request to TUNE and is recognised as a duplicate.
    """
    params = action_params(event.event_name, event.extras)
    params.update(
        advertiser_id=str(advertiser_id),
        site_id=str(site_id),
        sdk="server",
        response_format="json",
        user_id=event.user_id,
        device_ip=event.ip,
        system_date=str(event.time_stamp),
        transaction_id=event.event_id,
    )
    for name, value in event.extras.items():
        if name not in _ACTION_FIELDS:
            params.setdefault(name, str(value))  # an extra never overrides what the request is
    return params


def expected_types(action: str) -> frozenset[str] | None:
    """The `site_event_type`s a call of `action` resolves to when nothing conflicts, or None when
    any is expected: an action that is an event's ref calls that event, whatever its type."""
    if action == "session":
        return _SESSION_TYPES
    if action == INSTALL_EVENT or action == CUSTOM_ACTION or action in _PREDEFINED:
        return frozenset({action})
    return None


def type_mismatch(params: Mapping[str, str], site_event_type: str | None) -> bool:
    """Whether TUNE resolved a call to another type than its action (the events guide's
    "Potential Conflicts"): a pre-defined action whose event has another type, or a custom event
    (by name or site_event_id) defined in TUNE with a pre-defined type."""
    if not site_event_type:
        return False
    expected = expected_types(params.get("action", ""))
    return expected is not None and site_event_type.strip().lower() not in expected
