"""The fields of a webhook event: their names, which are required, how long each may be.

What each pass-through field accepts (checked in validation.py):
  revenue, rating       a decimal number >= 0 ("9.99"; a float is rounded to 8 places)
  quantity, level       an integer >= 0
  date1, date2          Unix seconds, an integer >= 0 (the SDKs' format for these)
  currency_code         3 letters (ISO 4217), upper-cased
  country_code          2 letters (ISO 3166-1 alpha-2), upper-cased
  ios_ifa, google_aid,
  fire_aid              an advertising id: hex digits and dashes
  ios_ifv               a vendor id: letters, digits and dashes (the seed's "ZZZZZZ-BBBB-..." is one)
  *_ad_tracking_disabled,
  existing_user,
  is_paying_user,
  is_coppa              a flag: 0 or 1 (true/false as JSON booleans)
  site_event_id         an integer >= 1: the id of an event defined in TUNE
  event_ref             the ref of an event defined in TUNE: letters and digits, lower-cased
  everything else       text without control characters

Where the names come from: the seed's Measurement API examples (004_55375504142fdfcd.txt: the
Python, Java and PHP session/install calls send ios_ifa, ios_ad_tracking_disabled, ios_ifv,
device_brand, device_model, device_carrier, country_code; the events guide references events by
site_event_id), and the URL keys TUNE's own SDKs send with sessions and events:
  Android  BranchMetrics/sdk-release  sdk-android/TuneMarketingConsoleSDK/src/main/java/com/tune/TuneUrlKeys.java
           (URL_KEYS: existing_user, google_ad_tracking_disabled, fire_aid, fire_ad_tracking_disabled, ...)
  iOS      BranchMetrics/sdk-release  sdk-ios/MobileAppTracker/Common/MATKeyStrings.m
           (ios_ifv, existing_user, is_paying_user, site_event_id, ...; is_coppa is Android's)
The SDKs' other keys are named in NOT_PASSED_THROUGH with the reason, so the webhook can say why
instead of guessing at another field.
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
    "ios_ifv",
    "ios_ad_tracking_disabled",
    "google_aid",
    "google_ad_tracking_disabled",
    "fire_aid",
    "fire_ad_tracking_disabled",
    "existing_user",
    "is_paying_user",
    "is_coppa",
    "site_event_id",
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
# An event defined in TUNE called by its ref: sent as `action=<ref>`, not under its own name (the
# events guide: a second event of type login, "Login2", is reached only by "action=login2").
EVENT_REF = "event_ref"
# The optional fields an Event keeps in `extras`.
OPTIONAL_FIELDS: tuple[str, ...] = (*PASSTHROUGH_FIELDS, EVENT_REF)
FIELDS: tuple[str, ...] = CORE_FIELDS + OPTIONAL_FIELDS

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
        "ios_ifv": 64,
        "ios_ad_tracking_disabled": 1,
        "google_aid": 64,
        "google_ad_tracking_disabled": 1,
        "fire_aid": 64,
        "fire_ad_tracking_disabled": 1,
        "existing_user": 1,
        "is_paying_user": 1,
        "is_coppa": 1,
        "site_event_id": 15,
        "event_ref": 128,
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
_SET_BY_MEASURE = "measure sets it itself on every request (docs/design.md, 'The Measurement API request')"
_SDK_BOOKKEEPING = "TUNE's SDKs set it for their own bookkeeping; a server-to-server call has no use for it"
_PERSONAL = "it is personal data measure does not pass through"
_ATTRIBUTION = "it attributes the event to a publisher, which is TUNE's to decide from its own records"
_DEVICE_DETAIL = "it is a detail TUNE's SDKs read on the device, which measure does not pass through"
_PURCHASE = ("in-app purchase items and receipts go in the SDKs' POST body, which a server-to-server call does "
             "not send; send revenue and currency_code")
_ANSWER = "it is a field of TUNE's answer, not of a call"
_SDK_KEYS = (
    "debug", "ver", "sdk_version", "sdk_plugin", "sdk_retry_attempt", "mat_id", "tracking_id", "open_log_id",
    "last_open_log_id", "install_log_id", "update_log_id", "insdate", "installer", "install_referrer",
    "referral_source", "referral_url", "download_date", "click_timestamp", "referrer_delay", "bypass_throttling",
    "skip_dup", "staging", "post_conversion", "app_ad_tracking", "data", "geofence_name", "mat_deeplink_checked",
    "redirect", "redirect_url", "run_date", "server_response", "session_datetime", "target_package",
)
_DEVICE_KEYS = (
    "app_version_name", "build", "carrier_country_code", "connection_type", "device_cpu_type", "device_cpu_subtype",
    "device_form", "locale", "location_auth_status", "mobile_country_code", "mobile_network_code", "os_jailbroke",
    "screen_density", "screen_layout_size", "screen_size",
)
_PURCHASE_KEYS = ("android_purchase_status", "ios_purchase_status", "apple_receipt", "store_receipt",
                  "store_iap_data", "store_iap_signature", "item", "unit_price")
_PERSONAL_KEYS = (
    "android_id", "android_id_md5", "android_id_sha1", "android_id_sha256", "device_id", "mac_address", "age",
    "gender", "latitude", "longitude", "altitude", "facebook_user_id", "google_user_id", "twitter_user_id",
    "user_email_md5", "user_email_sha1", "user_email_sha256", "user_name_md5", "user_name_sha1",
    "user_name_sha256", "user_phone_md5", "user_phone_sha1", "user_phone_sha256", "user_emails", "user_email",
    "user_name", "user_phone", "fb_cookie_id", "odin", "open_udid", "os_id", "ad_id", "truste_tpid",
)
_ATTRIBUTION_KEYS = (
    "publisher_id", "offer_id", "agency_id", "publisher_ref_id", "publisher_sub_publisher", "publisher_sub_site",
    "publisher_sub_campaign", "publisher_sub_adgroup", "publisher_sub_ad", "publisher_sub_keyword",
    "publisher_sub1", "publisher_sub2", "publisher_sub3", "publisher_sub4", "publisher_sub5",
    "advertiser_sub_publisher", "advertiser_sub_site", "advertiser_sub_campaign", "advertiser_sub_adgroup",
    "advertiser_sub_ad", "advertiser_sub_keyword", "campaign_id", "publisher_advertiser_id", "iad_attribution",
    "impression_datetime", "cworks_click", "cworks_impression",
)
# Measurement API parameters (the seed's, and the SDKs' URL keys above) the webhook refuses, each
# with why and what to send instead: a real parameter's name is never answered with a guess at
# another one ("ios_ad_tracking" is not "ios_ad_tracking_disabled": it means the opposite).
NOT_PASSED_THROUGH: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(_SDK_KEYS, _SDK_BOOKKEEPING),
    **dict.fromkeys(_PERSONAL_KEYS, _PERSONAL),
    **dict.fromkeys(_ATTRIBUTION_KEYS, _ATTRIBUTION),
    **dict.fromkeys(_DEVICE_KEYS, _DEVICE_DETAIL),
    **dict.fromkeys(_PURCHASE_KEYS, _PURCHASE),
    **dict.fromkeys(("log_id", "site_event_type", "success", "tracking_id"), _ANSWER),
    **dict.fromkeys(("advertiser_id", "site_id", "sdk", "response_format", "system_date"), _SET_BY_MEASURE),
    "action": "measure derives it from event_name; send event_ref to call an event defined in TUNE by its ref",
    "site_event_name": "send the name as event_name: a name that is not a session or pre-defined event is "
                       "sent as site_event_name",
    "ios_ad_tracking": "it is the opposite of ios_ad_tracking_disabled (1 = tracking allowed); "
                       "send ios_ad_tracking_disabled (1 = the user limited ad tracking)",
    "platform_aid": "the Android SDK's newer name for google_aid or fire_aid: send the one of your store",
    "platform_ad_tracking_disabled": "send google_ad_tracking_disabled or fire_ad_tracking_disabled, "
                                     "beside the advertising id it is about",
    "conversion_user_agent": "send it as user_agent",
    "transaction_id": "send it as event_id: measure sends each event's id as transaction_id",
    "device_ip": "send it as ip: measure sends the event's ip as device_ip",
})
# An event with more keys than this is not a typo to point out field by field, and listing a
# problem per key would let a small body produce a huge answer.
MAX_EVENT_KEYS = 64


def site_key(platform: str, storefront: str) -> str:
    """The MEASURE_SITE_IDS key of a platform and storefront: "pc/steam"."""
    return f"{platform.strip().lower()}/{storefront.strip().lower()}"
