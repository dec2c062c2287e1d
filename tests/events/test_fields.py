"""measure.events.fields: the field tables (which are required, their lengths) as validate applies them."""

from __future__ import annotations

import pytest

from measure.events import (
    CORE_FIELDS,
    DEFAULT_EVENT_NAME,
    FIELDS,
    MAX_FIELD_LENGTH,
    PASSTHROUGH_FIELDS,
    REQUIRED_FIELDS,
    site_key,
)
from tests.events.cases import check, only_problem, problems_of, raw_event


@pytest.mark.parametrize("field", ["user_id", "ip", "time_stamp", "platform", "storefront"])
def test_required_fields(field):
    assert only_problem(field, **{field: ...}).problem == "is required"


def test_every_field_has_a_length_limit_and_a_check():
    assert set(MAX_FIELD_LENGTH) == set(FIELDS)
    assert len(FIELDS) == len(set(FIELDS))
    for name in PASSTHROUGH_FIELDS:
        too_long = "1" * (MAX_FIELD_LENGTH[name] + 1)
        assert only_problem(name, **{name: too_long}).index == 0


def test_site_key():
    assert site_key("pc", "steam") == "pc/steam"
    assert site_key(" PC ", "Steam") == "pc/steam"


@pytest.mark.parametrize("field", CORE_FIELDS)
def test_a_core_field_left_out_is_refused_exactly_when_the_table_requires_it(field):
    # The table is the rule: the required ones are named when missing, the others are filled in.
    if field in REQUIRED_FIELDS:
        assert only_problem(field, **{field: ...}).problem == "is required"
    else:
        [event] = check(raw_event(**{field: ...}))
        assert getattr(event, field)


def test_an_event_missing_every_required_field_names_each_in_the_table_order():
    problems = problems_of(raw_event(**dict.fromkeys(REQUIRED_FIELDS, ...)))
    assert [(p.field, p.problem) for p in problems] == [(name, "is required") for name in REQUIRED_FIELDS]


def test_an_event_sent_without_a_name_is_the_default_event():
    assert check(raw_event(event_name=...))[0].event_name == DEFAULT_EVENT_NAME


# The URL keys TUNE's SDKs send, as published in BranchMetrics/sdk-release:
#   sdk-android/TuneMarketingConsoleSDK/src/main/java/com/tune/TuneUrlKeys.java (ANDROID)
#   sdk-ios/MobileAppTracker/Common/MATKeyStrings.m (IOS, its MAT_KEY_* parameter names)
ANDROID = """action advertiser_id debug site_event_id site_event_name package_name referral_source referral_url
tracking_id system_date sdk sdk_retry_attempt ver transaction_id response_format publisher_id offer_id
agency_id publisher_ref_id publisher_sub_publisher publisher_sub_site publisher_sub_campaign publisher_sub_adgroup
publisher_sub_ad publisher_sub_keyword publisher_sub1 publisher_sub2 publisher_sub3 publisher_sub4 publisher_sub5
advertiser_sub_publisher advertiser_sub_site advertiser_sub_campaign advertiser_sub_adgroup advertiser_sub_ad
advertiser_sub_keyword altitude android_id android_id_md5 android_id_sha1 android_id_sha256 app_ad_tracking app_name
app_version app_version_name connection_type country_code device_brand build device_carrier device_cpu_type
device_cpu_subtype device_id device_model fire_ad_tracking_disabled fire_aid google_ad_tracking_disabled google_aid
insdate download_date click_timestamp install_referrer installer language last_open_log_id latitude locale longitude
mac_address mat_id mobile_country_code mobile_network_code open_log_id os_version android_purchase_status
referrer_delay screen_density screen_layout_size sdk_plugin sdk_version truste_tpid conversion_user_agent
platform_ad_tracking_disabled platform_aid attribute_sub1 attribute_sub2 attribute_sub3 attribute_sub4 attribute_sub5
content_id content_type currency_code date1 date2 device_form level quantity rating advertiser_ref_id revenue
search_string age existing_user facebook_user_id gender google_user_id is_coppa is_paying_user twitter_user_id
user_email_md5 user_email_sha1 user_email_sha256 user_id user_name_md5 user_name_sha1 user_name_sha256 user_phone_md5
user_phone_sha1 user_phone_sha256 data store_iap_data store_iap_signature user_emails""".split()
IOS = """action advertiser_id app_ad_tracking app_name app_version bypass_throttling campaign_id publisher_id
conversion_user_agent country_code currency_code data debug mat_deeplink_checked device_brand device_carrier
device_cpu_type device_cpu_subtype device_model existing_user facebook_user_id fb_cookie_id geofence_name
google_user_id iad_attribution impression_datetime insdate install_log_id apple_receipt ios_ad_tracking ios_ifa ad_id
ios_ifv ios_purchase_status is_paying_user last_open_log_id language location_auth_status log_id mat_id odin
open_log_id open_udid os_id os_jailbroke os_version package_name post_conversion publisher_advertiser_id redirect
redirect_url advertiser_ref_id referral_source referral_url response_format revenue sdk_retry_attempt run_date
screen_density screen_size sdk sdk_plugin server_response session_datetime site_event_id site_event_name
site_event_type site_id skip_dup staging store_receipt system_date target_package tracking_id transaction_id
truste_tpid twitter_user_id update_log_id user_email user_id user_name user_phone user_name_md5 user_name_sha1
user_name_sha256 user_email_md5 user_email_sha1 user_email_sha256 user_phone_md5 user_phone_sha1 user_phone_sha256
ver cworks_click cworks_impression content_type content_id level quantity search_string rating date1 date2
attribute_sub1 attribute_sub2 attribute_sub3 attribute_sub4 attribute_sub5 item unit_price age gender latitude
longitude altitude mobile_country_code carrier_country_code mobile_network_code""".split()


@pytest.mark.parametrize("name", sorted(set(ANDROID) | set(IOS)))
def test_every_key_tune_s_sdks_send_is_a_field_or_refused_with_its_reason(name):
    from measure.events.fields import NOT_PASSED_THROUGH

    if name in FIELDS:
        assert name not in NOT_PASSED_THROUGH
        return
    problem = only_problem(name, **{name: "1"}).problem
    assert problem == f"is a Measurement API parameter the webhook does not take: {NOT_PASSED_THROUGH[name]}"
