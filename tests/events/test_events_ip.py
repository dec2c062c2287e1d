"""measure.events' ip rule against the standard library's: every IPv4 address, its edges, odd texts."""

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from measure.events import InvalidEvents, validate
from measure.events.ip import IPV4_RANGES

SITES = {"pc/steam": "2960"}
NOW = 1724094783


def accepted(ip: str) -> str | None:
    """The normalised ip of a seed event with this ip, or None when validate refuses it."""
    raw = {"user_id": "u", "ip": ip, "time_stamp": NOW, "platform": "pc", "storefront": "steam"}
    try:
        return validate([raw], site_ids=SITES, now=NOW)[0].ip
    except InvalidEvents as refused:
        assert [p.field for p in refused.problems] == ["ip"]
        return None


def stdlib_says_global(address: ipaddress.IPv4Address) -> bool:
    # 192.0.0.0/24 is left out: Python changed its mind on it between 3.11 and 3.12 (IANA's
    # registry, which IPV4_RANGES follows, marks all of it but .9 and .10 not globally reachable).
    return address.is_global and not address.is_multicast


_LIMBO = ipaddress.ip_network("192.0.0.0/24")
edges = [v for text, _ in IPV4_RANGES for net in [ipaddress.ip_network(text)]
         for v in (int(net.network_address) - 1, int(net.network_address), int(net.broadcast_address),
                   int(net.broadcast_address) + 1) if 0 <= v < 2**32]


@given(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(edges)))
@example(int(ipaddress.IPv4Address("175.124.248.15")))
def test_an_ipv4_address_is_accepted_exactly_when_the_standard_library_calls_it_global(value):
    address = ipaddress.IPv4Address(value)
    if address in _LIMBO:
        return
    assert (accepted(str(address)) == str(address)) is stdlib_says_global(address), address
    assert accepted(f"::ffff:{address}") == accepted(str(address))  # IPv4-mapped is the same address


@pytest.mark.parametrize(("ip", "ok"), [("192.0.0.8", False), ("192.0.0.9", True), ("192.0.0.10", True),
                                        ("192.0.0.11", False), ("192.0.1.1", True)])
def test_inside_192_0_0_0_24_only_the_two_anycast_addresses_are_global(ip, ok):
    assert (accepted(ip) is not None) is ok


@given(st.from_regex(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}", fullmatch=True))
def test_odd_dotted_strings_are_read_as_the_standard_library_reads_them(text):
    try:
        address = ipaddress.IPv4Address(text)  # refuses leading zeros and octets over 255
    except ValueError:
        assert accepted(text) is None
        return
    if address not in _LIMBO:
        assert (accepted(text) == text) is stdlib_says_global(address)


def test_non_ascii_digits_are_not_an_address():
    # int() reads Arabic-Indic digits and \d matches them; neither makes them an address.
    assert accepted("١٧٥.١٢٤.٢٤٨.١٥") is None
    assert accepted("１７５.１２４.２４８.１５") is None  # fullwidth
