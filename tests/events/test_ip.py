"""measure.events.ip: global unicast only, each refusal's reason named, the normal form; and the rule
against the standard library's: every IPv4 address, its edges, odd texts."""

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from measure.events import InvalidEvents, validate
from measure.events.ip import IPV4_RANGES
from tests.events.cases import check, only_problem, raw_event

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


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("not an ip", "is not an IPv4 or IPv6 address"),
        ("01.2.3.4", "is not an IPv4 or IPv6 address"),
        ("1.2.3", "is not an IPv4 or IPv6 address"),
        ("1.2.3.4.5", "is not an IPv4 or IPv6 address"),
        ("1" * 65, "65 characters long"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "zone index"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("::ffff:10.0.0.1", "'10.0.0.1' is a private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("198.18.0.1", "special-purpose"),
        ("192.0.0.1", "special-purpose"),
        ("fec0::1", "site-local"),
    ],
)
def test_ip_must_be_global_unicast_and_the_reason_is_named(ip, reason):
    problem = only_problem("ip", ip=ip).problem
    assert reason in problem


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        (" 175.124.248.15 ", "175.124.248.15"),
        ("::ffff:175.124.248.15", "175.124.248.15"),
        ("::FFFF:AF7C:F80F", "175.124.248.15"),
        ("2001:4860:0000:0000:0000:0000:0000:8888", "2001:4860::8888"),
        ("2A00:1450:4001:0811::200E", "2a00:1450:4001:811::200e"),
    ],
)
def test_ip_is_normalised(given, normalised):
    assert check(raw_event(ip=given))[0].ip == normalised


def test_ip_must_be_a_string():
    assert "must be a string" in only_problem("ip", ip=2936732175).problem


@pytest.mark.parametrize(("ip", "reason"), [
    ("2002:a00:1::1", "a 6to4 address carrying the IPv4 address 10.0.0.1, which is a private address"),
    ("2002:c0a8:101::1", "carrying the IPv4 address 192.168.1.1, which is a private address"),
    ("2002:7f00:1::", "carrying the IPv4 address 127.0.0.1, which is a loopback address"),
    ("2002:a9fe:a9fe::1", "carrying the IPv4 address 169.254.169.254, which is a link-local address"),
    ("2001:0:0a00:0001::f5ff:fffe", "a Teredo address carrying the IPv4 address 10.0.0.1, which is a private"),
    ("64:ff9b::10.0.0.1", "'10.0.0.1' is a private address"),
    ("64:ff9b::192.168.0.1", "'192.168.0.1' is a private address"),
    ("64:ff9b:1::a00:1", "NAT64's local-use range"),
    ("::10.0.0.1", "an IPv4-compatible address"),
    ("::8.8.8.8", "an IPv4-compatible address"),
    ("::ffff:0:10.0.0.1", "an IPv4-translated address"),
])
def test_an_ipv6_address_carrying_a_private_or_reserved_ipv4_one_is_refused(ip, reason):
    assert accepted(ip) is None
    assert reason in only_problem("ip", ip=ip).problem


@pytest.mark.parametrize(("ip", "normal"), [
    ("2002:0808:0808::1", "2002:808:808::1"),  # 6to4 of a public address
    ("64:ff9b::8.8.8.8", "8.8.8.8"),  # NAT64 stands for the IPv4 address it carries
])
def test_an_ipv6_address_carrying_a_public_ipv4_one_is_accepted(ip, normal):
    assert accepted(ip) == normal
