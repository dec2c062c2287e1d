"""The player's address: it must be a global unicast address, and is put in its compressed form.

One rule a family. IPv4 (and IPv4-mapped or NAT64 IPv6, which becomes the IPv4 it stands for) is
judged by one table of the special-purpose ranges, each with the reason a client is told; a
dotted quad is read by a lookup of its four octets, which accepts exactly what ipaddress accepts
(ASCII digits, 0-255, no leading zeros) at a fraction of the cost, since addresses are most of
validation's time. IPv6 is parsed and judged by ipaddress, after the addresses that carry an IPv4
one (6to4, Teredo, IPv4-compatible and -translated) are judged by what they carry.
"""

from __future__ import annotations

import bisect
import ipaddress
from types import MappingProxyType

from measure.events.fields import MAX_FIELD_LENGTH
from measure.events.problems import Bad, kind, show

_SHARED = "in the shared address space of carrier-grade NAT (100.64.0.0/10)"
_DOCUMENTATION = "in a documentation range (an example address)"
_PRIVATE = "a private address"
_SPECIAL = "in a special-purpose range, not globally routable"

# IPv4's special-purpose ranges (IANA's registry), the first that holds an address giving its
# reason; None marks the globally reachable exceptions inside a larger range.
IPV4_RANGES: tuple[tuple[str, str | None], ...] = (
    ("0.0.0.0/32", "the unspecified address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("224.0.0.0/4", "a multicast address"),
    ("100.64.0.0/10", _SHARED),
    ("192.0.2.0/24", _DOCUMENTATION),
    ("198.51.100.0/24", _DOCUMENTATION),
    ("203.0.113.0/24", _DOCUMENTATION),
    ("10.0.0.0/8", _PRIVATE),
    ("172.16.0.0/12", _PRIVATE),
    ("192.168.0.0/16", _PRIVATE),
    ("240.0.0.0/4", "in a reserved range"),  # 255.255.255.255 (broadcast) included
    ("0.0.0.0/8", _SPECIAL),
    ("192.0.0.9/32", None),  # Port Control Protocol anycast
    ("192.0.0.10/32", None),  # TURN anycast
    ("192.0.0.0/24", _SPECIAL),
    ("198.18.0.0/15", _SPECIAL),  # benchmarking
)


def _interval_table() -> tuple[tuple[int, ...], tuple[str | None, ...]]:
    """IPV4_RANGES as disjoint intervals: their starts (for bisect) and each one's reason."""
    networks = [(ipaddress.IPv4Network(text), reason) for text, reason in IPV4_RANGES]
    cuts = sorted({0} | {int(n.network_address) for n, _ in networks}
                  | {int(n.broadcast_address) + 1 for n, _ in networks if int(n.broadcast_address) < 2**32 - 1})
    starts: list[int] = []
    reasons: list[str | None] = []
    for start in cuts:
        reason = next((r for n, r in networks if int(n.network_address) <= start <= int(n.broadcast_address)), None)
        if not reasons or reasons[-1] != reason:
            starts.append(start)
            reasons.append(reason)
    return tuple(starts), tuple(reasons)


_STARTS, _REASONS = _interval_table()
# An octet's value by its canonical text: "0" to "255" in ASCII digits, without leading zeros.
_OCTETS = MappingProxyType({str(n): n for n in range(256)})


def ipv4_reason(value: int) -> str | None:
    """Why the IPv4 address with this integer value is not global unicast, or None when it is."""
    return _REASONS[bisect.bisect_right(_STARTS, value) - 1]


def _ipv6_reason(address: ipaddress.IPv6Address) -> str | None:
    embedded = _embedded_reason(address)
    if embedded:
        return embedded
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _IPV6_DOCUMENTATION[0] or address in _IPV6_DOCUMENTATION[1]:
        return _DOCUMENTATION
    if address in _IPV6_PRIVATE:
        return _PRIVATE
    if address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "in a reserved range"
    if not address.is_global:
        return _SPECIAL
    return None


def _embedded_reason(address: ipaddress.IPv6Address) -> str | None:
    """Why an IPv6 address that carries an IPv4 address is refused, by what it carries. Written
    out rather than left to ipaddress's tables, which differ between Python versions (3.11 calls
    all of 2002::/16 global, so 2002:c0a8:101:: for 192.168.1.1 passed)."""
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return "an IPv4-compatible address (::a.b.c.d, deprecated): send the IPv4 address itself"
    if address in _IPV4_TRANSLATED:
        return "an IPv4-translated address (::ffff:0:a.b.c.d), not globally routable"
    if address in _NAT64_LOCAL:
        return "in NAT64's local-use range (64:ff9b:1::/48), not globally routable"
    for what, inner in (("a 6to4", address.sixtofour), ("a Teredo", (address.teredo or (None, None))[1])):
        if inner is not None:
            reason = ipv4_reason(int(inner))
            if reason:
                return f"{what} address carrying the IPv4 address {inner}, which is {reason}"
    return None


_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
# NAT64 (RFC 6052): 64:ff9b::/96 stands for the IPv4 address in its last 32 bits, and is judged as it.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV6_DOCUMENTATION = (ipaddress.IPv6Network("2001:db8::/32"), ipaddress.IPv6Network("3fff::/20"))
_IPV6_PRIVATE = ipaddress.IPv6Network("fc00::/7")


def public_address(value: object) -> str:
    """The compressed form of a global unicast address, or Bad saying what is wrong with it."""
    if not isinstance(value, str):
        raise Bad(f"must be a string such as '175.124.248.15', not {kind(value)}")
    text = value.strip()
    if not text:
        raise Bad("is empty")
    if len(text) > MAX_FIELD_LENGTH["ip"]:
        raise Bad(f"is {len(text)} characters long; an IP address has at most 45")
    if "%" in text:
        raise Bad(f"{show(text)} has a zone index ('%...'); send the player's public address")
    parts = text.split(".")
    octets = _OCTETS
    if len(parts) == 4 and parts[0] in octets and parts[1] in octets and parts[2] in octets and parts[3] in octets:
        number = (octets[parts[0]] << 24) | (octets[parts[1]] << 16) | (octets[parts[2]] << 8) | octets[parts[3]]
        reason = ipv4_reason(number)
    elif ":" in text:
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError:
            raise Bad(f"{show(text)} is not an IPv4 or IPv6 address") from None
        mapped = address.ipv4_mapped
        if mapped is None and address in _NAT64:
            mapped = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if mapped is not None:
            text, reason = str(mapped), ipv4_reason(int(mapped))
        else:
            text, reason = str(address), _ipv6_reason(address)
    else:
        raise Bad(f"{show(text)} is not an IPv4 or IPv6 address")
    if reason:
        raise Bad(
            f"{show(text)} is {reason}; it must be the player's public (global unicast) address, "
            "as the telemetry server sees it or from X-Forwarded-For"
        )
    return text
