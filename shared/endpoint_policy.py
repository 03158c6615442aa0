"""Which network addresses and server names a registered endpoint may use.

One rule set for two callers: the submission rules (an IP literal in `endpoint_url`) and the
probe's egress guard (every address a host name resolves to). Only globally routable unicast
addresses pass, unless an operator lists a network in `ALLOWED_ENDPOINT_NETWORKS`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache
from typing import Any, Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Azure's virtual public address: DNS, DHCP and the host agent answer there from inside a VNet
# (learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16). It is
# "global" to Python's tables, so it is named here.
AZURE_PLATFORM_ADDRESS = ipaddress.IPv4Address("168.63.129.16")
# Ranges that Python's tables (3.11) call global although no public host lives there.
_NOT_PUBLIC: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv6Network("fec0::/10"), "a site-local address (deprecated by RFC 3879, routed only inside a site)"),
    (ipaddress.IPv6Network("3fff::/20"), "a documentation address (RFC 9637)"),
    (ipaddress.IPv4Network("192.88.99.0/24"), "a 6to4 relay anycast address (deprecated by RFC 7526)"),
)


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
    for network, reason in _NOT_PUBLIC:
        if address.version == network.version and address in network:
            return reason
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


NamespaceRule = Literal["namespace_mismatch", "namespace_public_suffix", "namespace_reserved"]


@cache
def _public_suffixes() -> Any:
    # The package's bundled snapshot of the Public Suffix List: nothing is downloaded, and the list
    # moves only with the locked package version. Loaded on first use, not at the app's import.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def reversed_labels(domain: str) -> str:
    """`mcp.contoso.com` -> `com.contoso.mcp` (and back): a namespace is a domain written backwards."""
    return ".".join(reversed(domain.lower().rstrip(".").split(".")))


def registrable_domain(host: str) -> str | None:
    """The part of `host` one owner controls (`contoso.com` for `mcp.contoso.com`, `attacker.github.io`
    for itself), by the Public Suffix List; None when the host is a public suffix itself."""
    found = _public_suffixes().privatesuffix(host.lower().rstrip("."))
    return str(found) if found is not None else None


def reserved_root(namespace: str, reserved: Iterable[str]) -> str | None:
    """The entry of `reserved` that `namespace` is, or lies below, if any."""
    namespace = namespace.lower()
    return next((root for root in reserved if namespace == root or namespace.startswith(root + ".")), None)


def namespace_rule(namespace: str, host: str, reserved: Iterable[str] = ()) -> NamespaceRule | None:
    """The namespace rule a server name's `namespace` breaks on an endpoint at `host`, or None.

    The namespace must be the host's labels reversed or a parent domain of it, and that domain the
    host's registrable domain or below it (`io.github/...` is no namespace of `attacker.github.io`:
    anyone can have a host under `github.io`). Shared hosting domains that are not on the list
    (`cloudapp.azure.com`) are why `reserved` exists: a reserved namespace, or one below it, is only
    the host's labels reversed in full.
    """
    namespace = namespace.lower()
    full = reversed_labels(host)
    if "." not in namespace or not (full == namespace or full.startswith(namespace + ".")):
        return "namespace_mismatch"
    registrable = registrable_domain(host)
    domain = reversed_labels(namespace)
    if registrable is None or not (domain == registrable or domain.endswith("." + registrable)):
        return "namespace_public_suffix"
    if namespace != full and reserved_root(namespace, reserved) is not None:
        return "namespace_reserved"
    return None


def public_suffix_rules() -> frozenset[str]:
    """Every rule of the bundled list (`com`, `*.kawasaki.jp`, `!city.kawasaki.jp`), lower-case ASCII."""
    return _rules()


@cache
def _rules() -> frozenset[str]:
    from publicsuffixlist import PSLFILE, encode_idn

    rules: set[str] = set()
    with open(PSLFILE, encoding="utf-8") as source:
        for line in source:
            rule = line.strip().split(" ")[0].lower()
            if rule and not rule.startswith("//"):
                prefix = "!" if rule.startswith("!") else ""
                rules.add(prefix + encode_idn(rule.lstrip("!")))
    return frozenset(rules)
