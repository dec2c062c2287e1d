"""Event resolution: the seed's worked examples and its two "Potential Conflicts", as written."""

import json
from pathlib import Path

import pytest

from measure.ops.resolution import (
    CUSTOM_TYPE,
    PREDEFINED_ACTIONS,
    DefinitionsError,
    EventDefinition,
    InvalidEventIdError,
    MissingActionError,
    MissingEventNameError,
    UnknownEventIdError,
    event_call,
    event_ref,
    explain_text,
    load_definitions,
    parse_definitions,
    resolve,
)

LOGIN = EventDefinition(1, "Login", "login")
LOGIN2 = EventDefinition(2, "Login2", "login")


def test_ref_is_the_name_lower_cased_letters_and_digits_only():
    assert LOGIN.ref == "login"
    assert EventDefinition(1, "Signing In", "login").ref == "signingin"
    assert event_ref("Review-Submitted #2") == "reviewsubmitted2"


def test_predefined_actions_are_the_seventeen_session_and_install():
    assert len(PREDEFINED_ACTIONS) == 19
    assert {"session", "install", "share"} <= set(PREDEFINED_ACTIONS)


# The call an event makes is send's: measure.tune.params.action_params.


@pytest.mark.parametrize(("raw", "call"), [
    ({"event_name": "install"}, {"action": "install"}),
    ({}, {"action": "session"}),
    ({"event_name": "Boss Defeated"}, {"action": "conversion", "site_event_name": "Boss Defeated"}),
    ({"site_event_id": 2}, {"action": "conversion", "site_event_id": "2"}),
    ({"event_ref": "login2"}, {"action": "login2"}),
])
def test_an_event_makes_the_call_send_makes(raw, call):
    from measure.tune.params import action_params

    assert event_call(raw) == call
    extras = {k: str(v) for k, v in raw.items() if k != "event_name"}
    assert event_call(raw) == action_params(str(raw.get("event_name", "game_open")), extras)


def test_an_event_by_ref_or_by_id_lands_on_login2_and_install_on_a_new_install_event():
    assert resolve(event_call({"event_ref": "login2"}), [LOGIN, LOGIN2]).event == LOGIN2
    by_id = resolve(event_call({"site_event_id": "2"}), [LOGIN, LOGIN2])
    assert by_id.event == LOGIN2 and by_id.matched_by == "id"
    assert "Potential conflict" in by_id.warnings[0]  # a custom call on an event of type login
    install = resolve(event_call({"event_name": "install"}), [LOGIN])
    assert install.created and install.event.type == "install"


# The seed's worked examples, each as written.


def test_login_alone_and_action_login_uses_it():
    resolution = resolve({"action": "login"}, [LOGIN])
    assert resolution.event == LOGIN
    assert (resolution.created, resolution.matched_by, resolution.warnings) == (False, "type+ref", [])


def test_login_and_login2_action_login_uses_login():
    resolution = resolve({"action": "login"}, [LOGIN, LOGIN2])
    assert resolution.event == LOGIN
    assert resolution.matched_by == "type+ref"


def test_login_and_login2_action_login2_uses_login2():
    resolution = resolve({"action": "login2"}, [LOGIN, LOGIN2])
    assert resolution.event == LOGIN2
    assert (resolution.created, resolution.matched_by) == (False, "ref")


def test_signing_in_is_the_only_login_event_so_action_login_uses_it():
    signing_in = EventDefinition(1, "Signing In", "login")
    resolution = resolve({"action": "login"}, [signing_in])
    assert resolution.event == signing_in
    assert resolution.matched_by == "type"
    assert not resolution.warnings


def test_only_purchase_defined_and_action_login_creates_a_login_event():
    purchase = EventDefinition(1, "Purchase", "purchase")
    resolution = resolve({"action": "login"}, [purchase])
    assert resolution.created
    assert resolution.matched_by == "new"
    assert resolution.event == EventDefinition(2, "login", "login")
    assert resolution.event.ref == "login"


def test_custom_event_without_definitions_is_created_automatically():
    resolution = resolve({"action": "conversion", "site_event_name": "review_submitted"}, [])
    assert resolution.created
    assert resolution.event == EventDefinition(1, "review_submitted", CUSTOM_TYPE)
    assert resolution.event.ref == "reviewsubmitted"


# The two potential conflicts.


def test_conflict_predefined_action_configured_with_another_type():
    purchase_as_login = EventDefinition(1, "Purchase", "login")
    resolution = resolve({"action": "purchase"}, [purchase_as_login])
    assert resolution.event == purchase_as_login
    assert resolution.matched_by == "ref"
    assert len(resolution.warnings) == 1
    assert "Potential conflict" in resolution.warnings[0]
    assert "type login" in resolution.warnings[0]


def test_conflict_predefined_action_shadowed_event_is_still_reported():
    real_purchase = EventDefinition(1, "Buy", "purchase")
    purchase_as_login = EventDefinition(2, "Purchase", "login")
    resolution = resolve({"action": "purchase"}, [real_purchase, purchase_as_login])
    assert resolution.event == real_purchase
    assert any('"Purchase"' in warning for warning in resolution.warnings)


def test_conflict_custom_event_configured_with_another_type():
    review_as_purchase = EventDefinition(7, "Review Submitted", "purchase")
    resolution = resolve({"action": "conversion", "site_event_name": "review_submitted"}, [review_as_purchase])
    assert resolution.event == review_as_purchase
    assert resolution.matched_by == "ref"
    assert len(resolution.warnings) == 1
    assert "custom event" in resolution.warnings[0] and "type purchase" in resolution.warnings[0]


def test_conflict_custom_event_by_id_configured_with_another_type():
    review_as_purchase = EventDefinition(7, "Review Submitted", "purchase")
    resolution = resolve({"action": "conversion", "site_event_id": "7"}, [review_as_purchase])
    assert resolution.matched_by == "id"
    assert any("Potential conflict" in warning for warning in resolution.warnings)


def test_custom_event_configured_as_custom_has_no_warning():
    review = EventDefinition(3, "Review Submitted", "conversion")
    resolution = resolve({"action": "conversion", "site_event_name": "review_submitted"}, [review])
    assert (resolution.event, resolution.matched_by, resolution.warnings) == (review, "type+ref", [])


# Other rules and errors.


def test_site_event_id_names_the_event_and_wins_over_the_name():
    review = EventDefinition(3, "Review", "conversion")
    resolution = resolve({"action": "conversion", "site_event_id": "3", "site_event_name": "other"}, [review])
    assert resolution.event == review
    assert resolution.matched_by == "id"
    assert resolution.warnings


def test_unknown_site_event_id_is_an_error_unless_a_name_is_given():
    with pytest.raises(UnknownEventIdError):
        resolve({"action": "conversion", "site_event_id": "9"}, [LOGIN])
    resolution = resolve({"action": "conversion", "site_event_id": "9", "site_event_name": "x"}, [LOGIN])
    assert resolution.created and resolution.event.id == 2


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({}, MissingActionError),
        ({"action": "conversion"}, MissingEventNameError),
        ({"action": "conversion", "site_event_id": "abc"}, InvalidEventIdError),
    ],
)
def test_unresolvable_calls(params, error):
    with pytest.raises(error):
        resolve(params, [])


def test_several_events_of_the_type_and_none_with_the_ref_warns():
    resolution = resolve({"action": "login"}, [EventDefinition(4, "Sign In", "login"), LOGIN2])
    assert resolution.event == LOGIN2
    assert any("Ambiguous" in warning for warning in resolution.warnings)


def test_unknown_action_is_created_as_a_custom_event_with_a_warning():
    resolution = resolve({"action": "level_up"}, [LOGIN])
    assert resolution.created
    assert resolution.event == EventDefinition(2, "level_up", CUSTOM_TYPE)
    assert resolution.warnings


def test_resolve_does_not_change_the_definitions():
    definitions = [LOGIN]
    resolve({"action": "purchase"}, definitions)
    assert definitions == [LOGIN]


def test_explain_names_the_steps_the_result_and_the_warnings():
    text = explain_text({"action": "purchase"}, [EventDefinition(1, "Purchase", "login")])
    assert text.startswith("API call: action=purchase")
    assert "1. " in text and "Result: event" in text
    assert "Warnings:" in text and "Potential conflict" in text
    created = explain_text({"action": "conversion", "site_event_name": "review_submitted"}, [])
    assert "created automatically" in created


def test_as_dict_is_json_ready():
    data = resolve({"action": "login"}, [LOGIN]).as_dict()
    assert json.loads(json.dumps(data)) == {
        "event": {"id": 1, "name": "Login", "ref": "login", "type": "login"},
        "created": False,
        "matched_by": "type+ref",
        "warnings": [],
    }


# Loading definitions.


def test_load_definitions(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"id": 1, "name": "Login", "type": "Login"}, {"id": 2, "name": "X", "type": "Event"}]))
    assert load_definitions(path) == [LOGIN, EventDefinition(2, "X", CUSTOM_TYPE)]


def test_example_definitions_file_loads():
    events = load_definitions(Path(__file__).resolve().parents[2] / "examples" / "events.json")
    assert events and all(isinstance(event, EventDefinition) for event in events)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"id": 1}, "expected a JSON list"),
        (["x"], "entry 0: expected an object"),
        ([{"id": 1, "name": "A"}], "entry 0 (\"A\"): field 'type' is missing"),
        ([{"id": 0, "name": "A", "type": "login"}], "field 'id' must be a positive whole number"),
        ([{"id": True, "name": "A", "type": "login"}], "field 'id'"),
        ([{"id": 1, "name": "!!", "type": "login"}], "field 'name'"),
        ([{"id": 1, "name": "A", "type": "dance"}], "field 'type' 'dance' is not an event type"),
        ([{"id": 1, "name": "A", "type": "login", "ref": "a"}], "unknown field 'ref'"),
        ([{"id": 1, "name": "A", "type": "login"}, {"id": 1, "name": "B", "type": "login"}], "entry 1 (\"B\")"),
        ([{"id": 1, "name": "A b", "type": "login"}, {"id": 2, "name": "ab", "type": "login"}], "same ref"),
    ],
)
def test_definition_errors_name_the_entry_and_field(data, fragment):
    with pytest.raises(DefinitionsError) as caught:
        parse_definitions(data, "events.json")
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("events.json")


def test_load_definitions_reports_bad_json_and_missing_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{]")
    with pytest.raises(DefinitionsError, match="not valid JSON"):
        load_definitions(bad)
    with pytest.raises(DefinitionsError, match="cannot read"):
        load_definitions(tmp_path / "missing.json")
