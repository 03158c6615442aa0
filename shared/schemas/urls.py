"""The endpoint URL rules: which URLs a registration may name, and the one form each is stored in.

Normalisation follows RFC 3986 section 6.2.2 (syntax-based) and 6.2.3 (scheme-based), so that
URLs a client treats as the same endpoint are stored as the same text and collide on the unique
claims. A trailing `/` is kept in the stored text but ignored by uniqueness (`claim_key`). Every
refusal is a `PydanticCustomError` whose type names the rule (the audit tool reports it) and whose
message tells the submitter what to do instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

from shared.config import EndpointSettings
from shared.endpoint_policy import address_refusal
from shared.schemas.common import has_control_characters

MAX_URL_LENGTH = 2048
# RFC 1035 section 2.3.4 (a name of 253 characters in its dotted form), which resolvers enforce.
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameter names that carry secrets (an Azure Functions `code` key, a SAS `sig`, an APIM
# `subscription-key`, OAuth tokens and client secrets...), compared by their letters and digits
# alone, case-insensitively: `Api-Key`, `api_key` and `apikey` are one name, and so are `token[]`
# and `token%00`, which servers read as `token`.
CREDENTIAL_PARAMETERS = frozenset({
    "code", "key", "apikey", "api_key", "sig", "signature", "token", "access_token", "secret", "password",
    "subscription_key", "client_secret", "id_token", "refresh_token", "sas", "sas_token", "jwt", "pwd", "passwd",
    "auth", "auth_token", "authorization", "api_token", "x_api_key",
})
_CREDENTIAL_KEYS = frozenset(re.sub(r"[^a-z0-9]", "", name) for name in CREDENTIAL_PARAMETERS)
_HOST_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# What RFC 3986 lets stand unencoded in a path segment (pchar less unreserved) and in a query.
_PATH_SAFE = frozenset("!$&'()*+,;=:@/")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_CONTEXT_KEY = "endpoints"


def validation_context(settings: EndpointSettings) -> dict[str, Any]:
    """The pydantic validation context under which a model holding an endpoint URL validates:
    `Model.model_validate(data, context=validation_context(settings.endpoints))`."""
    return {_CONTEXT_KEY: settings}


def context_settings(info: ValidationInfo) -> EndpointSettings:
    """The endpoint settings a validator was given. Validated without them, a model fails loudly
    rather than falling back to some default: the rules must be the deployment's."""
    context = info.context
    settings = context.get(_CONTEXT_KEY) if isinstance(context, Mapping) else None
    if not isinstance(settings, EndpointSettings):
        raise TypeError("an endpoint URL validates with the endpoint settings: pass "
                        "context=validation_context(settings.endpoints) to model_validate")
    return settings


def _refuse(rule: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(rule, message)


def _normalise_component(text: str, safe: frozenset[str]) -> str:
    """Percent-encoding normalised (RFC 3986 6.2.2.1-2): unreserved characters decoded, other
    escapes upper-cased, and characters that may not stand bare (`{`, `|`, `\\`...) encoded."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise _refuse("url_percent_encoding", "has a '%' that starts no %XX escape; write a literal '%' as %25")
    out: list[str] = []
    index = 0
    while index < len(text):
        character = text[index]
        if character == "%":
            decoded = chr(int(text[index + 1:index + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else text[index:index + 3].upper())
            index += 3
            continue
        out.append(character if character in _UNRESERVED or character in safe else f"%{ord(character):02X}")
        index += 1
    return "".join(out)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: `/a/./b/../c` -> `/a/c`."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    trailing = path.endswith(("/.", "/..")) and output
    return "/" + "/".join(output) + ("/" if trailing else "")


def _host(raw: str | None, settings: EndpointSettings) -> str:
    """The host as stored (lower-cased, no trailing dot, IPv6 compressed), or a refusal."""
    host = raw or ""
    host = host[:-1] if host.endswith(".") else host
    if "%" in host:
        raise _refuse("url_host", "must name its host without percent-escapes or an IPv6 zone; use the plain host name")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        why = address_refusal(address, settings.allowed_networks)
        if why is not None:
            raise _refuse("url_address_refused", (
                f"names {why}, which published clients must not be sent to; register a public host name, or "
                "ask an operator to list the network in ALLOWED_ENDPOINT_NETWORKS"))
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    if len(host) > MAX_HOST_LENGTH:
        raise _refuse("url_host_too_long", f"names a host of {len(host)} characters; a DNS name has at most "
                                           f"{MAX_HOST_LENGTH}, so register the host name clients resolve")
    if any(len(label) > MAX_LABEL_LENGTH for label in host.split(".")):
        raise _refuse("url_host_label_too_long", f"names a host with a label longer than {MAX_LABEL_LENGTH} "
                                                 "characters, which DNS cannot hold; register the host name "
                                                 "clients resolve")
    if not _HOST_NAME.match(host):
        raise _refuse("url_host", "must name a valid host; write an internationalised name in its xn-- form")
    if host == "localhost" or host.endswith(".localhost"):
        raise _refuse("url_host_refused", "names localhost, which every client resolves to itself; "
                                          "register the host name other machines reach the server by")
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        raise _refuse("url_numeric_host", (
            "names its host by a number that clients read as an IP address (such as 2130706433 or 0x7f.1); "
            "register a host name, or the address in dotted-decimal form"))
    return host


def _check_query(query: str) -> None:
    # `;` separates parameters too for some servers (the HTML 4 recommendation, older frameworks).
    for pair in re.split(r"[&;]", query):
        raw = unquote(pair.split("=", 1)[0].replace("+", " "))
        name = raw.strip().lower().replace("-", "_")
        # An array suffix (`token[]`, `token[0]`) names the same parameter to PHP, Rails and others.
        key = re.sub(r"[^a-z0-9]", "", name.split("[", 1)[0])
        if key in _CREDENTIAL_KEYS:
            name = re.sub(r"[^a-z0-9_\[\]]", "?", name)
            raise _refuse("url_credential_parameter", (
                f"carries a credential in its query parameter {name!r}; published URLs are public, so remove "
                "it and have clients send the secret in a header"))


def _check_characters(value: str) -> None:
    """What any URL we store or call must be before it is parsed: short, ASCII, no spaces or controls."""
    if len(value) > MAX_URL_LENGTH:
        raise _refuse("url_too_long", f"must be at most {MAX_URL_LENGTH} characters")
    if not value.isascii() or any(character.isspace() for character in value) or has_control_characters(value):
        raise _refuse("url_characters", "must be an ASCII URL without spaces; percent-encode the path and "
                                        "write an internationalised host in its xn-- form")


def normalise_url(value: str, settings: EndpointSettings) -> str:
    """The stored form of an endpoint URL, or a refusal saying what to submit instead."""
    _check_characters(value)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise _refuse("url_host", "must name a valid host; write an IPv6 address in brackets: [2001:db8::1]") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc:
        raise _refuse("url_scheme", "must be an absolute https URL, such as https://mcp.contoso.com/mcp")
    if scheme == "http" and not settings.allow_http:
        raise _refuse("url_scheme", (
            "must use https: clients send their tokens to this endpoint; serve it over TLS (http is admitted "
            "only where an operator sets ALLOW_HTTP_ENDPOINTS=true)"))
    if "@" in parts.netloc:
        raise _refuse("url_userinfo", "must not contain user information; have clients send credentials in a header")
    if parts.fragment or "#" in value:
        raise _refuse("url_fragment", "must not contain a fragment (#...); remove it")
    host = _host(parts.hostname, settings)
    try:
        port = parts.port
    except ValueError:
        raise _refuse("url_port", "has an invalid port; use a number from 1 to 65535") from None
    if port == 0:
        raise _refuse("url_port", "has an invalid port; use a number from 1 to 65535")
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    # A trailing `/` stays: `/mcp/` and `/mcp` may be different resources, and clients compare the
    # published URL with their own configuration byte for byte. Uniqueness ignores it (claim_key).
    path = remove_dot_segments(_normalise_component(parts.path or "/", _PATH_SAFE))
    query = _normalise_component(parts.query, _QUERY_SAFE)
    if query:
        _check_query(query)
    normalised = urlunsplit((scheme, netloc, path, query, ""))
    if len(normalised) > MAX_URL_LENGTH:
        raise _refuse("url_too_long", f"must be at most {MAX_URL_LENGTH} characters once normalised")
    return normalised


# One trailing `/` of a non-root path, before the query. The same expression is migration 0009's
# endpoint_url_claim, which keys the claims that keep endpoint URLs unique; the two must agree.
_TRAILING_SLASH = re.compile(r"^([a-z]+://[^/?#]+/[^?]*)/(\?.*)?$")


def claim_key(url: str) -> str:
    """The form a stored URL is unique in: `https://h/mcp/` and `https://h/mcp` are one endpoint
    to uniqueness, though each is published as submitted; the root `https://h/` stays itself."""
    return _TRAILING_SLASH.sub(r"\1\2", url)


def check_subscription_url(value: str, settings: EndpointSettings) -> str:
    """A notification receiver's URL, checked by the endpoint **host** rules and returned as given.

    Its query may carry the receiver's own credential (a Teams Workflows URL's `sig`), so the
    credential-parameter rule does not apply, and nothing is normalised: the receiver gets the URL
    byte for byte as its owner gave it."""
    _check_characters(value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _refuse("url_host", "must name a valid host and port; write an IPv6 address in brackets") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc:
        raise _refuse("url_scheme", "must be an absolute https URL, such as https://hooks.contoso.com/registry")
    if scheme == "http" and not settings.allow_http:
        raise _refuse("url_scheme", "must use https: deliveries are signed but not secret; http is admitted only "
                                    "where an operator sets ALLOW_HTTP_ENDPOINTS=true")
    if "@" in parts.netloc:
        raise _refuse("url_userinfo", "must not contain user information; put the receiver's credential in the "
                                      "query or let it verify the signature")
    if parts.fragment or "#" in value:
        raise _refuse("url_fragment", "must not contain a fragment (#...); remove it")
    if port == 0:
        raise _refuse("url_port", "has an invalid port; use a number from 1 to 65535")
    _host(parts.hostname, settings)
    return value


def redacted_url(value: str) -> str:
    """The URL as it is shown back: every query value replaced, so a receiver's credential in it
    (a Teams `sig`) is never read again from the API."""
    parts = urlsplit(value)
    if not parts.query:
        return value
    query = "&".join(f"{pair.split('=', 1)[0]}=redacted" if "=" in pair else pair
                     for pair in parts.query.split("&"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
