"""The server-name namespace rule of submissions, as the statements need it.

The rule itself is `shared.endpoint_policy.namespace_rule`; this module words its refusals and
prepares what an edit's statement compares when one side of the pair (URL host, server name) is
stored: the namespaces a new URL allows, or the pattern a stored host must match for a new name.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from shared.config import get_endpoint_settings
from shared.endpoint_policy import (
    NamespaceRule,
    namespace_rule,
    public_suffix_rules,
    registrable_domain,
    reserved_root,
    reversed_labels,
)
from shared.errors import ValidationFailed


def host_of(endpoint_url: str) -> str:
    return (urlsplit(endpoint_url).hostname or "").lower()


def _reserved() -> tuple[str, ...]:
    return get_endpoint_settings().reserved_namespaces


def namespace_of(server_name: str) -> str:
    return server_name.split("/", 1)[0].lower()


def namespaces_for(endpoint_url: str) -> list[str]:
    """Every namespace a non-administrator's server name may have with this URL, longest first."""
    host = host_of(endpoint_url)
    labels = reversed_labels(host).split(".")
    candidates = (".".join(labels[:count]) for count in range(len(labels), 0, -1))
    return [candidate for candidate in candidates if namespace_rule(candidate, host, _reserved()) is None]


def host_pattern(server_name: str) -> str:
    """A PostgreSQL regular expression that the stored endpoint host must match for `server_name`
    to be in its namespace (an edit that changes only the name). Raises the refusal when the
    namespace can belong to no host at all (`io.github/...`: `github.io` is a public suffix)."""
    domain = reversed_labels(namespace_of(server_name))
    if "." not in domain:
        raise refusal(server_name, None, "namespace_mismatch")
    registrable = registrable_domain(domain)
    if registrable is None or not (domain == registrable or domain.endswith("." + registrable)):
        raise refusal(server_name, None, "namespace_public_suffix")
    exact = _escaped(domain)
    if reserved_root(namespace_of(server_name), _reserved()) is not None:
        return f"^{exact}$"
    return _shared_suffixes_excluded(domain) + f"(?:[^.]+\\.)*{exact}$"


def _escaped(domain: str) -> str:
    return domain.replace(".", "\\.")


@lru_cache(maxsize=1024)
def _shared_suffixes_excluded(domain: str) -> str:
    """`^` and a lookahead refusing hosts at or under a public suffix that lies below `domain`
    (`s3.amazonaws.com` below `amazonaws.com`): their registrable domain is below the namespace."""
    exact: list[str] = []
    wildcard: list[str] = []
    for rule in sorted(public_suffix_rules()):
        if rule.startswith("!"):
            # An exception's host sits under its wildcard's base, which the wildcard branch refuses.
            continue
        if rule.startswith("*."):
            base = rule[2:]
            if base == domain or base.endswith("." + domain):
                wildcard.append(_escaped(base))
        elif rule.endswith("." + domain):
            exact.append(_escaped(rule))
    pattern = "^"
    if exact:
        pattern += f"(?!(?:[^.]+\\.)*(?:{'|'.join(exact)})$)"
    if wildcard:
        pattern += f"(?!(?:[^.]+\\.)+(?:{'|'.join(wildcard)})$)"
    return pattern


_WHY = {
    "namespace_mismatch": "is not in the namespace of the endpoint host {host!r}",
    "namespace_public_suffix": ("names a shared suffix under which anyone can have a host (Public Suffix List), "
                                "not a domain of the endpoint host {host!r}"),
    "namespace_reserved": ("is in the reserved namespace {root!r} (RESERVED_NAMESPACES), which only an "
                           "administrator may give, unless it is the endpoint host {host!r} reversed in full"),
}


def refusal(server_name: str, endpoint_url: str | None, rule: NamespaceRule | None = None) -> ValidationFailed:
    """422 naming the rule broken (worked out from the pair when not given) and the namespaces that
    would do for the endpoint URL, when one is known."""
    namespace = namespace_of(server_name)
    if endpoint_url is None:
        why = ("names a shared suffix under which anyone can have a host (Public Suffix List)"
               if rule == "namespace_public_suffix" else "does not have a domain as its namespace")
        message = (f"server_name {server_name!r} {why}: use the endpoint host's labels reversed, or a parent "
                   "domain down to its registrable domain (com.contoso/... for mcp.contoso.com)")
    else:
        host = host_of(endpoint_url)
        rule = rule or namespace_rule(namespace, host, _reserved()) or "namespace_mismatch"
        choices = " or ".join(f"{candidate}/..." for candidate in namespaces_for(endpoint_url)) or "a domain name"
        why = _WHY[rule].format(host=host, root=reserved_root(namespace, _reserved()))
        message = (f"server_name {server_name!r} {why}: use {choices} (the host's labels reversed, or a parent "
                   "domain down to its registrable domain), or ask an administrator to submit it")
    return ValidationFailed(f"Invalid body: server_name: {message}",
                            [{"loc": ["body", "server_name"], "msg": message, "type": rule or "namespace_mismatch"}])


def check(server_name: str, endpoint_url: str) -> None:
    rule = namespace_rule(namespace_of(server_name), host_of(endpoint_url), _reserved())
    if rule is not None:
        raise refusal(server_name, endpoint_url, rule)
