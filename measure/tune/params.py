"""What an event becomes at the Measurement API: the action, and every parameter `send` signs and POSTs.

`send` (through delivery) and the webhook's debug endpoint build the request with the same
function, so what /measure/debug shows is what is signed.
"""

from __future__ import annotations

from measure.events import Event

SESSION_EVENTS: frozenset[str] = frozenset({"game_open", "session", "app_open", "open", "session_start"})
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

# The parameters measure sets itself on every request.
REQUEST_PARAMETERS: tuple[str, ...] = (
    "action", "site_event_name", "advertiser_id", "site_id", "sdk", "response_format", "user_id", "device_ip",
    "system_date", "transaction_id",
)
# The optional parameters of the Measurement API's server-to-server event call that an event may
# carry (TUNE's Measurement API reference, "event parameters"). measure.events' PASSTHROUGH_FIELDS
# are the ones the webhook accepts; /measure/debug warns of any it passes that are not in here.
API_PARAMETERS: frozenset[str] = frozenset({
    "revenue", "currency_code", "advertiser_ref_id", "user_agent", "country_code", "app_version", "app_name",
    "package_name", "language", "os_version", "device_brand", "device_model", "device_carrier", "ios_ifa",
    "google_aid", "attribute_sub1", "attribute_sub2", "attribute_sub3", "attribute_sub4", "attribute_sub5",
    "content_type", "content_id", "quantity", "rating", "search_string", "level", "date1", "date2",
})


def action_for(event_name: str) -> tuple[str, str | None]:
    """(action, site_event_name): session events and pre-defined names match case-insensitively;
    any other name is a custom event, sent as a conversion under the user's own spelling."""
    key = event_name.strip().lower()
    if key in SESSION_EVENTS:
        return "session", None
    if key in _PREDEFINED:
        return key, None
    return "conversion", event_name


def to_params(event: Event, *, advertiser_id: str, site_id: str) -> dict[str, str]:
    """The Measurement API parameters of one event, all strings, ready to sign and POST.

    `system_date` is the event's own time and `transaction_id` its id, so a retry days later is
    the same request to TUNE and is recognised as a duplicate.
    """
    action, site_event_name = action_for(event.event_name)
    params = {"action": action}
    if site_event_name is not None:
        params["site_event_name"] = site_event_name
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
        params.setdefault(name, str(value))  # an extra never overrides what the request is
    return params
