"""The IPv4 fast path of events' ip check agrees with the full ipaddress path everywhere."""

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from measure import events


def full_path_says_global(text: str) -> bool:
    return events._not_global(ipaddress.ip_address(text)) is None


edges = [v for start, end in events._IPV4_SPECIAL for v in (start - 1, start, end, end + 1) if 0 <= v < 2**32]


@given(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(edges)))
@example(int(ipaddress.IPv4Address("175.124.248.15")))
def test_fast_path_never_accepts_what_the_full_path_refuses(value):
    text = str(ipaddress.IPv4Address(value))
    if events._plainly_global_ipv4(text):
        assert full_path_says_global(text), text


@given(st.from_regex(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}", fullmatch=True))
def test_odd_dotted_strings_fall_back_to_the_full_path(text):
    if events._plainly_global_ipv4(text):
        assert str(ipaddress.ip_address(text)) == text and full_path_says_global(text)


def test_non_ascii_digits_are_not_an_address():
    # \d would match these and int() reads them; the fast path must leave them to ipaddress, which refuses.
    assert not events._plainly_global_ipv4("١٧٥.١٢٤.٢٤٨.١٥")
