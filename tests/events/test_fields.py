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
