"""The fields of a webhook event: their names, which are required, how long each may be.

What each pass-through field accepts (checked in validation.py):
  revenue, rating       a decimal number >= 0 ("9.99"; a float is rounded to 8 places)
  quantity, level       an integer >= 0
  date1, date2          Unix seconds, an integer >= 0 (the SDKs' format for these)
  currency_code         3 letters (ISO 4217), upper-cased
  country_code          2 letters (ISO 3166-1 alpha-2), upper-cased
  ios_ifa, google_aid   an advertising id: hex digits and dashes
  everything else       text without control characters
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_EVENT_NAME = "game_open"

# The fields every Event has, in Event's order.
CORE_FIELDS: tuple[str, ...] = ("event_id", "event_name", "user_id", "ip", "time_stamp", "platform", "storefront")
REQUIRED_FIELDS: tuple[str, ...] = ("user_id", "ip", "time_stamp", "platform", "storefront")

# Optional Measurement API parameters passed through under their own names.
PASSTHROUGH_FIELDS: tuple[str, ...] = (
    "revenue",
    "currency_code",
    "advertiser_ref_id",
    "user_agent",
    "country_code",
    "app_version",
    "app_name",
    "package_name",
    "language",
    "os_version",
    "device_brand",
    "device_model",
    "device_carrier",
    "ios_ifa",
    "google_aid",
    "attribute_sub1",
    "attribute_sub2",
    "attribute_sub3",
    "attribute_sub4",
    "attribute_sub5",
    "content_type",
    "content_id",
    "quantity",
    "rating",
    "search_string",
    "level",
    "date1",
    "date2",
)
FIELDS: tuple[str, ...] = CORE_FIELDS + PASSTHROUGH_FIELDS

# Longest accepted value of each field, in characters (after stripping surrounding whitespace).
MAX_FIELD_LENGTH: Mapping[str, int] = MappingProxyType(
    {
        "event_id": 128,
        "event_name": 128,
        "user_id": 256,
        "ip": 64,  # 45 is the longest address; the slack only lets the message say what is wrong
        "time_stamp": 20,
        "platform": 32,
        "storefront": 32,
        "revenue": 24,
        "currency_code": 3,
        "advertiser_ref_id": 256,
        "user_agent": 1024,
        "country_code": 2,
        "app_version": 64,
        "app_name": 256,
        "package_name": 256,
        "language": 35,
        "os_version": 64,
        "device_brand": 128,
        "device_model": 128,
        "device_carrier": 128,
        "ios_ifa": 64,
        "google_aid": 64,
        "attribute_sub1": 256,
        "attribute_sub2": 256,
        "attribute_sub3": 256,
        "attribute_sub4": 256,
        "attribute_sub5": 256,
        "content_type": 256,
        "content_id": 256,
        "quantity": 15,
        "rating": 24,
        "search_string": 256,
        "level": 15,
        "date1": 15,
        "date2": 15,
    }
)
# An event with more keys than this is not a typo to point out field by field, and listing a
# problem per key would let a small body produce a huge answer.
MAX_EVENT_KEYS = 64


def site_key(platform: str, storefront: str) -> str:
    """The MEASURE_SITE_IDS key of a platform and storefront: "pc/steam"."""
    return f"{platform.strip().lower()}/{storefront.strip().lower()}"
