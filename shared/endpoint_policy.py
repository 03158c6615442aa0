"""Which network addresses and server names a registered endpoint may use.

One rule set for two callers: the submission rules (an IP literal in `endpoint_url`) and the
probe's egress guard (every address a host name resolves to). Only globally routable unicast
addresses pass, unless an operator lists a network in `ALLOWED_ENDPOINT_NETWORKS`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Azure's virtual public address: DNS, DHCP and the host agent answer there from inside a VNet
# (learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16). It is
# "global" to Python's tables, so it is named here.
AZURE_PLATFORM_ADDRESS = ipaddress.IPv4Address("168.63.129.16")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo, NAT64), which clients reach."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """Why an address is not a public unicast host, or None when it is."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where the cloud metadata service answers)"
    if address.is_multicast:
        return "a multicast address"
    if address == AZURE_PLATFORM_ADDRESS:
        return "Azure's platform address"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.IPv4Network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs as `ALLOWED_ENDPOINT_NETWORKS` lists them; ValueError names the bad one."""
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a network in CIDR form, such as 10.20.0.0/16") from None
    return tuple(networks)


def address_refusal(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why an endpoint may not use `address` (a sentence fragment), or None when it may.

    An IPv6 form that carries an IPv4 address is judged by that address too, since a client
    connecting to it reaches the IPv4 host.
    """
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.insert(0, embedded)
    allowed = tuple(allowed)
    for candidate in candidates:
        if any(candidate.version == network.version and candidate in network for network in allowed):
            return None
    for candidate in candidates:
        reason = _kind(candidate)
        if reason is not None:
            return reason
    return None


def namespace_matches(server_name: str, host: str) -> bool:
    """True when the namespace of `server_name` is `host` reversed, or a parent domain of it
    with at least two labels: `com.contoso.mcp/x` or `com.contoso/x` for `mcp.contoso.com`."""
    namespace = server_name.split("/", 1)[0].lower()
    reversed_host = ".".join(reversed(host.lower().rstrip(".").split(".")))
    if namespace.count(".") < 1:
        return False
    return reversed_host == namespace or reversed_host.startswith(namespace + ".")
