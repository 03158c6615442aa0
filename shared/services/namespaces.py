"""The server-name namespace rule of submissions, as the statements need it.

The rule itself is `shared.endpoint_policy.namespace_matches`; this module only prepares what an
edit's statement compares, when one side of the pair (URL host, server name) is stored.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.endpoint_policy import namespace_matches
from shared.errors import ValidationFailed


def host_of(endpoint_url: str) -> str:
    return (urlsplit(endpoint_url).hostname or "").lower()


def namespaces_for(endpoint_url: str) -> list[str]:
    """Every namespace a server name may have with this URL (its host reversed, or a parent domain)."""
    host = host_of(endpoint_url)
    labels = list(reversed(host.rstrip(".").split(".")))
    candidates = (".".join(labels[:count]) for count in range(1, len(labels) + 1))
    return [candidate for candidate in candidates if namespace_matches(f"{candidate}/x", host)]


def namespace_domain(server_name: str) -> str | None:
    """The domain a server name's namespace names (`com.contoso/x` -> `contoso.com`): an endpoint
    host may be that domain or under it. None when the namespace names no domain at all."""
    namespace = server_name.split("/", 1)[0].lower()
    domain = ".".join(reversed(namespace.split(".")))
    return domain if namespace_matches(server_name, domain) else None


def refusal(server_name: str, endpoint_url: str | None) -> ValidationFailed:
    """422 naming the namespaces that would do (for the endpoint URL, when one is known)."""
    if endpoint_url is None:
        message = (f"server_name {server_name!r} does not have a domain as its namespace: use the endpoint "
                   "host's labels reversed, or a parent domain with at least two labels (com.contoso/... for "
                   "mcp.contoso.com)")
    else:
        host = host_of(endpoint_url)
        choices = " or ".join(f"{namespace}/..." for namespace in namespaces_for(endpoint_url)) or "a domain name"
        message = (f"server_name {server_name!r} is not in the namespace of the endpoint host {host!r}: "
                   f"use {choices} (the host's labels reversed, or a parent domain with at least two labels)")
    return ValidationFailed(f"Invalid body: server_name: {message}",
                            [{"loc": ["body", "server_name"], "msg": message, "type": "namespace_mismatch"}])


def check(server_name: str, endpoint_url: str) -> None:
    if not namespace_matches(server_name, host_of(endpoint_url)):
        raise refusal(server_name, endpoint_url)
