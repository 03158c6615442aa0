"""What a registry must refuse, through the API over real HTTP: endpoint URLs that send clients to
themselves, to internal networks or to the cloud metadata service, credentials in URLs, text that
renders as something else; and the one normalised form that makes equivalent URLs collide."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from shared.schemas.urls import claim_key
from tests.registry import assert_problem, body, decide, submit, unique_host
from tests.support import Caller, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

ADDRESS = "url_address_refused"
NUMERIC = "url_numeric_host"
LOCALHOST = "url_host_refused"
SCHEME = "url_scheme"
CREDENTIAL = "url_credential_parameter"

# Every URL of issue 15, and the IPv6, decimal, octal and hex forms of each refused range.
REFUSED_URLS = [
    # The cloud metadata service (link-local 169.254.0.0/16).
    ("http://169.254.169.254/latest/meta-data/", SCHEME),
    ("https://169.254.169.254/latest/meta-data/", ADDRESS),
    ("https://169.254.0.1/", ADDRESS),
    ("https://[::ffff:169.254.169.254]/", ADDRESS),
    ("https://[::ffff:a9fe:a9fe]/", ADDRESS),
    ("https://[64:ff9b::a9fe:a9fe]/", ADDRESS),
    ("https://2852039166/", NUMERIC),
    ("https://0251.0376.0251.0376/", NUMERIC),
    ("https://0xa9.0xfe.0xa9.0xfe/", NUMERIC),
    ("https://0xa9fea9fe/", NUMERIC),
    ("https://[fe80::1]/", ADDRESS),
    # Loopback: what clients resolve to themselves (an Ollama on 11434, say).
    ("http://127.0.0.1:11434/api", SCHEME),
    ("https://127.0.0.1:11434/api", ADDRESS),
    ("https://127.9.9.9/", ADDRESS),
    ("https://[::1]/", ADDRESS),
    ("https://[0:0:0:0:0:0:0:1]/", ADDRESS),
    ("http://[::ffff:127.0.0.1]/", SCHEME),
    ("https://[::ffff:127.0.0.1]/", ADDRESS),
    ("https://[::ffff:7f00:1]/", ADDRESS),
    ("https://[64:ff9b::7f00:1]/", ADDRESS),
    ("http://2130706433/", SCHEME),
    ("https://2130706433/", NUMERIC),
    ("http://0x7f.1/", SCHEME),
    ("https://0x7f.1/", NUMERIC),
    ("https://0x7f000001/", NUMERIC),
    ("https://0177.0.0.1/", NUMERIC),
    ("https://017700000001/", NUMERIC),
    ("https://127.1/", NUMERIC),
    ("https://localhost/", LOCALHOST),
    ("https://LOCALHOST.:8443/", LOCALHOST),
    ("https://mcp.localhost/", LOCALHOST),
    # Private networks.
    ("http://10.0.0.5/", SCHEME),
    ("https://10.0.0.5/", ADDRESS),
    ("https://[::ffff:10.0.0.5]/", ADDRESS),
    ("https://[::ffff:a00:5]/", ADDRESS),
    ("https://[2002:a00:5::]/", ADDRESS),
    ("https://167772165/", NUMERIC),
    ("https://012.0.0.5/", NUMERIC),
    ("https://0xa.0.0.5/", NUMERIC),
    ("https://0x0a000005/", NUMERIC),
    ("https://172.16.0.1/", ADDRESS),
    ("https://[::ffff:ac10:1]/", ADDRESS),
    ("https://2886729729/", NUMERIC),
    ("https://0254.020.0.1/", NUMERIC),
    ("https://0xac.0x10.0.1/", NUMERIC),
    ("https://192.168.1.1/", ADDRESS),
    ("https://[::ffff:c0a8:101]/", ADDRESS),
    ("https://3232235777/", NUMERIC),
    ("https://0300.0250.1.1/", NUMERIC),
    ("https://0xc0a80101/", NUMERIC),
    # Shared address space (carrier-grade NAT).
    ("https://100.64.0.1/", ADDRESS),
    ("https://[::ffff:6440:1]/", ADDRESS),
    ("https://1681915905/", NUMERIC),
    ("https://0144.0100.0.1/", NUMERIC),
    ("https://0x64.0x40.0.1/", NUMERIC),
    # Unique-local, multicast, reserved, unspecified, Azure's platform address.
    ("https://[fd12:3456::1]/", ADDRESS),
    ("https://[fc00::1]/", ADDRESS),
    ("https://224.0.0.1/", ADDRESS),
    ("https://[ff02::1]/", ADDRESS),
    ("https://[::ffff:e000:1]/", ADDRESS),
    ("https://3758096385/", NUMERIC),
    ("https://240.0.0.1/", ADDRESS),
    ("https://0.0.0.0/", ADDRESS),
    ("https://[::]/", ADDRESS),
    ("https://0/", NUMERIC),
    ("https://168.63.129.16/", ADDRESS),
    ("https://[::ffff:a83f:8110]/", ADDRESS),
    ("https://2822734096/", NUMERIC),
    ("https://0250.077.0201.020/", NUMERIC),
    ("https://0xa8.0x3f.0x81.0x10/", NUMERIC),
    # Plain http to anywhere.
    ("http://mcp.contoso.com/mcp", SCHEME),
    ("HTTP://MCP.CONTOSO.COM/mcp", SCHEME),
    # Credentials in the query: an Azure Functions key, a SAS signature, API keys and tokens.
    ("https://weather-fn.azurewebsites.net/api/mcp?code=aBc123==", CREDENTIAL),
    ("https://weather-fn.azurewebsites.net/api/mcp?x=1&CODE=aBc123", CREDENTIAL),
    ("https://weather-fn.azurewebsites.net/api/mcp?%63ode=aBc123", CREDENTIAL),
    ("https://storage.contoso.com/mcp?sv=2024-01-01&sig=abc%3D", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?Api-Key=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?access_token=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?token", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?password=x", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?secret=s", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?apikey=k&key=k", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?signature=s", CREDENTIAL),
    # Credentials under other names and spellings (issue 20): API Management keys, OAuth tokens and
    # secrets, SAS tokens, and the array, NUL and `;` forms servers read as the same parameter.
    ("https://apim.contoso.com/mcp?subscription-key=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?client_secret=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?id_token=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?refresh_token=abc", CREDENTIAL),
    ("https://storage.contoso.com/mcp?sas=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?jwt=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?pwd=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?auth=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?token[]=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?token%5B%5D=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?token%00=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?x=1;token=abc", CREDENTIAL),
    ("https://mcp.contoso.com/mcp?Client-Secret=abc", CREDENTIAL),
    # Site-local, documentation and 6to4-relay addresses, which Python's tables call global.
    ("https://[fec0::1]/", ADDRESS),
    ("https://[feff:ffff::1]/", ADDRESS),
    ("https://[3fff::1]/", ADDRESS),
    ("https://[3fff:fff:ffff::1]/", ADDRESS),
    ("https://192.88.99.1/", ADDRESS),
    ("https://[::ffff:192.88.99.1]/", ADDRESS),
    ("https://[2002:c058:6301::]/", ADDRESS),
    # Host names DNS cannot hold: over 253 characters, or a label over 63.
    ("https://" + ".".join(["a" * 62] * 4) + ".com/mcp", "url_host_too_long"),
    ("https://" + "a" * 2000 + ".com/mcp", "url_host_too_long"),
    ("https://" + "a" * 64 + ".contoso.com/mcp", "url_host_label_too_long"),
    # Malformed in ways normalisation cannot mend.
    ("https://mcp.contoso.com/a%zzb", "url_percent_encoding"),
    ("https://[fe80::1%25eth0]/", "url_host"),
    ("https://mcp..contoso.com/", "url_host"),
    ("https://mcp.contoso.com:0/", "url_port"),
]

ADDRESS_DETAIL = ("names {kind}, which published clients must not be sent to; register a public host name, "
                  "or ask an operator to list the network in ALLOWED_ENDPOINT_NETWORKS")
EXACT_DETAILS = {
    "https://169.254.169.254/latest/meta-data/": ADDRESS_DETAIL.format(
        kind="a link-local address (where the cloud metadata service answers)"),
    "https://[::ffff:127.0.0.1]/": ADDRESS_DETAIL.format(kind="a loopback address"),
    "https://10.0.0.5/": ADDRESS_DETAIL.format(kind="a private address"),
    "https://2130706433/": ("names its host by a number that clients read as an IP address (such as 2130706433 "
                            "or 0x7f.1); register a host name, or the address in dotted-decimal form"),
    "https://localhost/": ("names localhost, which every client resolves to itself; register the host name "
                           "other machines reach the server by"),
    "http://mcp.contoso.com/mcp": ("must use https: clients send their tokens to this endpoint; serve it over TLS "
                                   "(http is admitted only where an operator sets ALLOW_HTTP_ENDPOINTS=true)"),
    "https://weather-fn.azurewebsites.net/api/mcp?code=aBc123==": (
        "carries a credential in its query parameter 'code'; published URLs are public, so remove it and have "
        "clients send the secret in a header"),
    "https://mcp.contoso.com/mcp?token%00=abc": (
        "carries a credential in its query parameter 'token?'; published URLs are public, so remove it and have "
        "clients send the secret in a header"),
    "https://[fec0::1]/": ADDRESS_DETAIL.format(
        kind="a site-local address (deprecated by RFC 3879, routed only inside a site)"),
    "https://[3fff::1]/": ADDRESS_DETAIL.format(kind="a documentation address (RFC 9637)"),
    "https://192.88.99.1/": ADDRESS_DETAIL.format(kind="a 6to4 relay anycast address (deprecated by RFC 7526)"),
    "https://" + "a" * 2000 + ".com/mcp": (
        "names a host of 2004 characters; a DNS name has at most 253, so register the host name clients resolve"),
    "https://" + "a" * 64 + ".contoso.com/mcp": (
        "names a host with a label longer than 63 characters, which DNS cannot hold; register the host name "
        "clients resolve"),
}


def assert_refused(response: httpx.Response, field: str, rule: str, message: str | None = None) -> None:
    problem = assert_problem(response, 422)
    assert len(problem["errors"]) == 1, problem
    error = problem["errors"][0]
    assert (error["loc"][:2], error["type"]) == (["body", field], rule), problem
    if message is not None:
        assert error["msg"] == message
    where = ".".join(str(part) for part in error["loc"][1:])
    assert problem["detail"] == f"Invalid body: {where}: {error['msg']}"


@pytest.mark.parametrize(("url", "rule"), REFUSED_URLS)
def test_each_refused_url_is_422_naming_its_rule(
    client: httpx.Client, user: Caller, sql: Sql, url: str, rule: str
) -> None:
    response = client.post("/registrations", json=body(endpoint_url=url), headers=user.headers)
    assert_refused(response, "endpoint_url", rule, EXACT_DETAILS.get(url))
    assert sql.fetchval("SELECT count(*) FROM registrations WHERE endpoint_url ILIKE $1", url.split("?")[0]) == 0


@pytest.mark.parametrize(("url", "rule"), [
    ("https://169.254.169.254/latest/meta-data/", ADDRESS),
    ("http://mcp.contoso.com/mcp", SCHEME),
    ("https://mcp.contoso.com/mcp?code=abc", CREDENTIAL),
    ("https://0x7f.1/", NUMERIC),
])
def test_an_edit_is_held_to_the_same_url_rules(
    client: httpx.Client, user: Caller, sql: Sql, url: str, rule: str
) -> None:
    created = submit(client, user)
    response = client.patch(f"/registrations/{created['registration_id']}", json={"endpoint_url": url},
                            headers=user.headers)
    assert_refused(response, "endpoint_url", rule)
    assert sql.fetchval("SELECT endpoint_url FROM registrations WHERE registration_id = $1",
                        uuid.UUID(created["registration_id"])) == created["endpoint_url"]


def _stored(host: str) -> list[tuple[str, str]]:
    return [
        (f"HTTPS://{host.upper()}.:443/Weather/", f"https://{host}/Weather/"),
        (f"https://{host}/a/./b/../c/", f"https://{host}/a/c/"),
        (f"https://{host}/a/b/..", f"https://{host}/a/"),
        (f"https://{host}/mcp//?q=1", f"https://{host}/mcp//?q=1"),
        (f"https://{host}/%77eather/%7e%2fx%2f", f"https://{host}/weather/~%2Fx%2F"),
        (f"https://{host}/p%5b1%5D?q=%7e&r=%2b", f"https://{host}/p%5B1%5D?q=~&r=%2B"),
        (f"https://{host}/{{a|b}}", f"https://{host}/%7Ba%7Cb%7D"),
        (f"https://{host}:8443", f"https://{host}:8443/"),
        (f"https://{host}/..", f"https://{host}/"),
        (f"https://{host}/tools?tokens=2&codec=x", f"https://{host}/tools?tokens=2&codec=x"),
        (f"https://{host}/tools?author=ada;keyboard=uk", f"https://{host}/tools?author=ada;keyboard=uk"),
    ]


def test_accepted_urls_are_stored_in_their_normalised_form(client: httpx.Client, user: Caller, sql: Sql) -> None:
    for index, (submitted, stored) in enumerate(_stored(unique_host())):
        created = submit(client, user, endpoint_url=submitted, endpoint_name=f"Normalised {index}")
        assert created["endpoint_url"] == stored, submitted
        assert sql.fetchval("SELECT endpoint_url FROM registrations WHERE registration_id = $1",
                            uuid.UUID(created["registration_id"])) == stored


def test_a_public_ip_literal_is_accepted(client: httpx.Client, user: Caller) -> None:
    path = uuid.uuid4().hex[:8]
    assert submit(client, user, endpoint_url=f"https://8.8.8.8/{path}")["endpoint_url"] == f"https://8.8.8.8/{path}"
    created = submit(client, user, endpoint_url=f"https://[2001:4860:4860:0:0:0:0:8888]:8443/{path}")
    assert created["endpoint_url"] == f"https://[2001:4860:4860::8888]:8443/{path}"


def _equivalents(host: str) -> list[str]:
    """Spellings of https://{host}/weather that a client treats as the same endpoint."""
    return [
        f"https://{host}./weather",
        f"https://{host.upper()}/weather",
        f"HTTPS://{host}/weather",
        f"https://{host}:443/weather",
        f"https://{host}/weather/",
        f"https://{host}/%77eather",
        f"https://{host}/%77%65%61%74%68%65%72",
        f"https://{host}/./weather",
        f"https://{host}/x/../weather",
        f"https://{host}/a/b/../../weather/.",
        f"https://{host}.:443/./%77eather/",
    ]


def test_equivalent_urls_collide_with_409(client: httpx.Client, user: Caller, other_user: Caller, sql: Sql) -> None:
    host = unique_host()
    first = submit(client, user, endpoint_url=f"https://{host}/weather")
    for url in _equivalents(host):
        response = client.post("/registrations", json=body(endpoint_url=url), headers=other_user.headers)
        assert_problem(response, 409, "A registration with this endpoint_url already exists.")
    assert sql.fetchval("SELECT count(*) FROM registrations WHERE endpoint_url LIKE $1", f"%{host}%") == 1
    # An edit onto an equivalent of another registration's URL collides the same way.
    second = submit(client, user, endpoint_url=f"https://{host}/other")
    response = client.patch(f"/registrations/{second['registration_id']}",
                            json={"endpoint_url": f"https://{host.upper()}./%77eather/"}, headers=user.headers)
    assert_problem(response, 409, "A registration with this endpoint_url already exists.")
    assert first["endpoint_url"] == f"https://{host}/weather"


def test_a_trailing_slash_is_kept_in_the_answer_the_feed_and_the_audit_trail(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    url = f"https://{unique_host()}/mcp/"
    created = submit(client, user, endpoint_url=url)
    registration_id = created["registration_id"]
    assert created["endpoint_url"] == url
    decide(client, admin, registration_id, "Approved")
    assert client.get(f"/registrations/{registration_id}", headers=user.headers).json()["endpoint_url"] == url
    entry = client.get(f"/v0.1/servers/{quote(created['server_name'], safe='')}/versions/latest").json()
    assert [remote["url"] for remote in entry["server"]["remotes"]] == [url]
    trail = client.get(f"/registrations/{registration_id}/audit", headers=admin.headers).json()["results"]
    assert [(item["action"], item["metadata"]["endpoint_url"]) for item in trail] == [
        ("Created", url), ("Approved", url)]
    assert sql.fetchval("SELECT published_endpoint_url FROM registrations WHERE registration_id = $1",
                        uuid.UUID(registration_id)) == url


@pytest.mark.parametrize(("held", "other"), [("/mcp/", "/mcp"), ("/mcp", "/mcp/")])
def test_a_trailing_slash_is_ignored_by_uniqueness_on_create_and_edit(
    client: httpx.Client, user: Caller, other_user: Caller, held: str, other: str
) -> None:
    host = unique_host()
    first = submit(client, user, endpoint_url=f"https://{host}{held}")
    response = client.post("/registrations", json=body(endpoint_url=f"https://{host}{other}"),
                           headers=other_user.headers)
    assert_problem(response, 409, "A registration with this endpoint_url already exists.")
    second = submit(client, other_user, endpoint_url=f"https://{host}/elsewhere")
    response = client.patch(f"/registrations/{second['registration_id']}",
                            json={"endpoint_url": f"https://{host}{other}"}, headers=other_user.headers)
    assert_problem(response, 409, "A registration with this endpoint_url already exists.")
    # The holder itself may move between the two spellings: one endpoint, its own claim.
    moved = client.patch(f"/registrations/{first['registration_id']}",
                         json={"endpoint_url": f"https://{host}{other}"}, headers=user.headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["endpoint_url"] == f"https://{host}{other}"


def test_a_pending_edit_and_the_published_url_both_hold_the_endpoint(
    client: httpx.Client, user: Caller, other_user: Caller, admin: Caller
) -> None:
    host = unique_host()
    created = submit(client, user, endpoint_url=f"https://{host}/mcp")
    decide(client, admin, created["registration_id"], "Approved")
    edited = client.patch(f"/registrations/{created['registration_id']}",
                          json={"endpoint_url": f"https://{host}/next/"}, headers=user.headers)
    assert edited.status_code == 200, edited.text
    for path in ("/mcp/", "/mcp", "/next", "/next/"):
        response = client.post("/registrations", json=body(endpoint_url=f"https://{host}{path}"),
                               headers=other_user.headers)
        assert_problem(response, 409, "A registration with this endpoint_url already exists.")


def test_the_root_path_is_stored_with_its_slash_either_way_and_collides(
    client: httpx.Client, user: Caller, other_user: Caller
) -> None:
    # An empty path is the root path `/` (RFC 3986 6.2.3), as it was before slashes were kept.
    host = unique_host()
    created = submit(client, user, endpoint_url=f"https://{host}")
    assert created["endpoint_url"] == f"https://{host}/"
    response = client.post("/registrations", json=body(endpoint_url=f"https://{host}/"), headers=other_user.headers)
    assert_problem(response, 409, "A registration with this endpoint_url already exists.")
    other = unique_host()
    assert submit(client, user, endpoint_url=f"https://{other}/")["endpoint_url"] == f"https://{other}/"
    response = client.post("/registrations", json=body(endpoint_url=f"https://{other}"), headers=other_user.headers)
    assert_problem(response, 409, "A registration with this endpoint_url already exists.")


def test_a_deleted_registration_frees_both_spellings(
    client: httpx.Client, user: Caller, other_user: Caller, admin: Caller
) -> None:
    host = unique_host()
    created = submit(client, user, endpoint_url=f"https://{host}/mcp/")
    decide(client, admin, created["registration_id"], "Approved")
    assert client.delete(f"/registrations/{created['registration_id']}", headers=admin.headers).status_code == 204
    without = submit(client, other_user, endpoint_url=f"https://{host}/mcp")
    assert without["endpoint_url"] == f"https://{host}/mcp"
    assert client.delete(f"/registrations/{without['registration_id']}", headers=admin.headers).status_code == 204
    assert submit(client, user, endpoint_url=f"https://{host}/mcp/")["endpoint_url"] == f"https://{host}/mcp/"


@pytest.mark.parametrize("url", [
    "https://h.example.com/mcp/", "https://h.example.com/mcp", "https://h.example.com/", "https://h.example.com//",
    "https://h.example.com/a/b/?x=1/", "https://h.example.com/?q=/", "https://h.example.com:8443/mcp/?a=b",
    "https://h.example.com/mcp//", "https://[2001:db8::1]/mcp/", "https://h.example.com/mcp?",
])
def test_the_claim_key_in_sql_is_the_one_in_python(sql: Sql, url: str) -> None:
    assert sql.fetchval("SELECT endpoint_url_claim($1)", url) == claim_key(url)


@pytest.fixture(scope="module")
def permissive_api(database_url: str, authority: DevAuthority,
                   host_factory: Callable[[Mapping[str, str]], RunningHost]) -> str:
    """A host whose operator admits http and one internal IPv4 and IPv6 network, and reserves the
    namespaces com.fabrikam and com.northwind (instead of the default list)."""
    host = host_factory(app_environment(database_url, authority, ALLOW_HTTP_ENDPOINTS="true",
                                        ALLOWED_ENDPOINT_NETWORKS="10.20.0.0/16, fd00:1::/64",
                                        RESERVED_NAMESPACES="com.fabrikam, COM.Northwind"))
    return host.base_url


@pytest.mark.parametrize(("url", "stored"), [
    ("http://mcp-{tag}.contoso.com:80/mcp", "http://mcp-{tag}.contoso.com/mcp"),
    ("https://10.20.1.2/{tag}", "https://10.20.1.2/{tag}"),
    ("http://10.20.255.1:8080/{tag}", "http://10.20.255.1:8080/{tag}"),
    ("https://[fd00:1::5]/{tag}", "https://[fd00:1::5]/{tag}"),
    ("https://[::ffff:10.20.1.3]/{tag}", "https://[::ffff:a14:103]/{tag}"),
])
def test_listed_networks_and_http_are_admitted_where_the_operator_allows_them(
    permissive_api: str, user: Caller, url: str, stored: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=permissive_api, timeout=30) as client:
        created = submit(client, user, endpoint_url=url.format(tag=tag))
    assert created["endpoint_url"] == stored.format(tag=tag)


@pytest.mark.parametrize(("url", "rule"), [
    ("http://169.254.169.254/latest/meta-data/", ADDRESS),
    ("http://127.0.0.1:11434/api", ADDRESS),
    ("https://10.21.0.1/", ADDRESS),
    ("https://[fd00:2::1]/", ADDRESS),
    ("http://2130706433/", NUMERIC),
    ("http://localhost/", LOCALHOST),
    ("http://mcp.contoso.com/mcp?code=abc", CREDENTIAL),
    ("ftp://mcp.contoso.com/mcp", SCHEME),
])
def test_what_the_operator_did_not_list_stays_refused(
    permissive_api: str, user: Caller, url: str, rule: str
) -> None:
    with httpx.Client(base_url=permissive_api, timeout=30) as client:
        response = client.post("/registrations", json=body(endpoint_url=url), headers=user.headers)
    assert_refused(response, "endpoint_url", rule)


INVISIBLE = "text_invisible_character"
IGNORABLE = "text_ignorable_character"
MIXED = "text_mixed_script"


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("endpoint_name", "Contoso Weather \u202edce812-LLAB\u202c", INVISIBLE),
    ("endpoint_name", "Weather\u200bTools", INVISIBLE),
    ("endpoint_name", "Weather\u2066Tools\u2069", INVISIBLE),
    ("endpoint_name", "Weather\ue000Tools", INVISIBLE),
    ("endpoint_name", "Weather\u2028Tools", INVISIBLE),
    ("endpoint_name", "Weather\nTools", "text_control_character"),
    ("description", "Forecasts\u200d for any city.", INVISIBLE),
    ("description", "Forecasts \u202efor any city.", INVISIBLE),
    ("description", "Forecasts\u2029for any city.", INVISIBLE),
    ("description", "Forecasts\ufefffor any city.", INVISIBLE),
    ("description", "Forecasts\x1bfor any city.", "text_control_character"),
    ("available_tools", ["forecast", "get\u200b_alerts"], INVISIBLE),
    ("available_tools", ["\U000e0041forecast"], INVISIBLE),
    ("available_tools", ["forecast", "ｆｏｒｅｃａｓｔ"], "tool_names_not_distinct"),
    ("owner_contact", "ceo\u202e@contoso.com", "email_not_ascii"),
    ("owner_contact", "weather@bücher.example", "email_not_ascii"),
    ("owner_contact", "wéather@contoso.com", "email_not_ascii"),
    ("owner_contact", "weather@contoso", "email_invalid"),
    ("owner_contact", "weather@@contoso.com", "email_invalid"),
    ("version", "1.0.0\u202e", INVISIBLE),
    # Characters that display as nothing though they are not format characters (issue 20).
    ("endpoint_name", "Weather Tools\ufe0f", IGNORABLE),
    ("endpoint_name", "Weather\u034fTools", IGNORABLE),
    ("endpoint_name", "\u3164 Weather Tools", IGNORABLE),
    ("endpoint_name", "\uffa0 Weather Tools", IGNORABLE),
    ("endpoint_name", "Weather\u2800Tools", IGNORABLE),
    ("endpoint_name", "Weather\U000e0100Tools", IGNORABLE),
    ("available_tools", ["forecast", "get\u034f_alerts"], IGNORABLE),
    ("description", "Forecasts\u2800for any city.", IGNORABLE),
    # Mixed scripts: Cyrillic lookalikes among Latin letters, and right-to-left letters among Latin ones.
    ("endpoint_name", "\u041c\u0456\u0441rosoft Graph", MIXED),
    ("endpoint_name", "Weather \u05e9\u05dc\u05d5\u05dd", MIXED),
    ("endpoint_name", "Weather \u0645\u0631\u062d\u0628\u0627", MIXED),
    ("endpoint_name", "Pay\u03c1al Tools", MIXED),
    ("available_tools", ["get_f\u043erecast"], MIXED),
])
def test_text_that_renders_as_something_else_is_refused(
    client: httpx.Client, user: Caller, field: str, value: Any, rule: str
) -> None:
    response = client.post("/registrations", json=body(**{field: value}), headers=user.headers)
    assert_refused(response, field, rule)


def test_the_right_to_left_override_is_refused_with_what_to_do(client: httpx.Client, user: Caller) -> None:
    response = client.post("/registrations", json=body(endpoint_name="Contoso Weather \u202edce812-LLAB\u202c"),
                           headers=user.headers)
    assert_refused(response, "endpoint_name", INVISIBLE, (
        "contains the invisible or direction-changing character U+202E (a bidi control, zero-width, private-use "
        "or separator character), which can make text render as something else; remove it"))
    response = client.post("/registrations", json=body(owner_contact="weather@bücher.example"),
                           headers=user.headers)
    assert_refused(response, "owner_contact", "email_not_ascii", (
        "must be an ASCII e-mail address; write an internationalised domain in its xn-- form (as the domain's "
        "DNS name) and use an ASCII mailbox name"))


def test_names_and_tool_names_are_nfkc_normalised(client: httpx.Client, user: Caller, sql: Sql) -> None:
    created = submit(client, user, endpoint_name="  Ｗｅａｔｈｅｒ ﬁnder ① ",
                     available_tools=["ｆｏｒｅｃａｓｔ", " get_alerts "],
                     owner_contact="weather@xn--bcher-kva.example",
                     description="Line one.\n\tIndented line two.")
    assert (created["endpoint_name"], created["available_tools"]) == ("Weather finder 1", ["forecast", "get_alerts"])
    assert created["owner_contact"] == "weather@xn--bcher-kva.example"
    assert created["description"] == "Line one.\n\tIndented line two."
    row = sql.fetchrow("SELECT endpoint_name, available_tools FROM registrations WHERE registration_id = $1",
                       uuid.UUID(created["registration_id"]))
    assert row is not None
    assert (row["endpoint_name"], row["available_tools"]) == ("Weather finder 1", ["forecast", "get_alerts"])


def test_edits_and_decision_reasons_are_held_to_the_text_rules(
    client: httpx.Client, user: Caller, admin: Caller
) -> None:
    created = submit(client, user)
    path = f"/registrations/{created['registration_id']}"
    assert_refused(client.patch(path, json={"endpoint_name": "Weather \u202eslooT"}, headers=user.headers),
                   "endpoint_name", INVISIBLE)
    assert_refused(client.patch(path, json={"owner_contact": "ceo\u202e@contoso.com"}, headers=user.headers),
                   "owner_contact", "email_not_ascii")
    response = client.patch(f"{path}/status", json={"status": "Rejected", "reason": "Looks \u202efine"},
                            headers=admin.headers)
    assert_refused(response, "reason", INVISIBLE)
    decided = decide(client, admin, created["registration_id"], "Rejected", "Use https.\nThen resubmit.")
    assert decided["status_reason"] == "Use https.\nThen resubmit."


def test_names_in_one_script_or_latin_beside_cjk_are_accepted(client: httpx.Client, user: Caller) -> None:
    for index, name in enumerate(["\u5929\u6c17 Weather", "\u5929\u6c17 \u3066\u3093\u304d Weather",
                                  "\ub0a0\uc528 Weather", "\u041f\u043e\u0433\u043e\u0434\u0430 2",
                                  "\u05de\u05d6\u05d2 \u05d0\u05d5\u05d5\u05d9\u05e8 2", "Caf\u00e9 No. 1"]):
        created = submit(client, user, endpoint_name=f"{name} {index}", available_tools=["\u5929\u6c17", "forecast"])
        assert created["endpoint_name"] == f"{name} {index}"


def refused_name(response: httpx.Response, rule: str) -> str:
    problem = assert_problem(response, 422)
    assert [(error["loc"], error["type"]) for error in problem["errors"]] == [(["body", "server_name"], rule)]
    assert problem["detail"] == f"Invalid body: server_name: {problem['errors'][0]['msg']}"
    return str(problem["errors"][0]["msg"])


def test_shared_hosting_domains_give_no_namespace_to_their_tenants(
    client: httpx.Client, user: Caller, admin: Caller
) -> None:
    tag = uuid.uuid4().hex[:8]
    azure = f"https://evil-{tag}.eastus.cloudapp.azure.com/mcp"
    message = refused_name(client.post("/registrations", json=body(endpoint_url=azure, server_name=f"com.azure/{tag}"),
                                       headers=user.headers), "namespace_reserved")
    assert message == (
        f"server_name 'com.azure/{tag}' is in the reserved namespace 'com.azure' (RESERVED_NAMESPACES), which only "
        f"an administrator may give, unless it is the endpoint host 'evil-{tag}.eastus.cloudapp.azure.com' "
        f"reversed in full: use com.azure.cloudapp.eastus.evil-{tag}/... (the host's labels reversed, or a parent "
        "domain down to its registrable domain), or ask an administrator to submit it")
    github = f"https://attacker-{tag}.github.io/mcp"
    message = refused_name(client.post("/registrations", json=body(endpoint_url=github,
                                                                   server_name=f"io.github/github-mcp-{tag}"),
                                       headers=user.headers), "namespace_public_suffix")
    assert message.startswith(f"server_name 'io.github/github-mcp-{tag}' names a shared suffix under which anyone "
                              f"can have a host (Public Suffix List), not a domain of the endpoint host "
                              f"'attacker-{tag}.github.io': use io.github.attacker-{tag}/...")
    render = f"https://evil-{tag}.app.render.com/mcp"
    refused_name(client.post("/registrations", json=body(endpoint_url=render, server_name=f"com.render/{tag}"),
                             headers=user.headers), "namespace_public_suffix")
    # Below a reserved namespace too, unless it is the host in full.
    refused_name(client.post("/registrations", json=body(endpoint_url=azure, server_name=f"com.azure.cloudapp/{tag}"),
                             headers=user.headers), "namespace_reserved")
    assert submit(client, user, endpoint_url=azure, server_name=f"com.azure.cloudapp.eastus.evil-{tag}/x")
    assert submit(client, user, endpoint_url=github, server_name=f"io.github.attacker-{tag}/x")
    assert submit(client, user, endpoint_url=render, server_name=f"com.render.app.evil-{tag}/x")
    # An administrator may give any namespace.
    official = client.post("/registrations", json=body(endpoint_url=f"https://{tag}.github.io/mcp",
                                                       server_name=f"io.github/official-{tag}"), headers=admin.headers)
    assert official.status_code == 201, official.text


def test_an_edit_cannot_move_into_a_shared_or_reserved_namespace(client: httpx.Client, user: Caller) -> None:
    tag = uuid.uuid4().hex[:8]
    # The name alone changes: the statement judges the stored host.
    render = submit(client, user, endpoint_url=f"https://evil-{tag}.app.render.com/mcp")
    path = f"/registrations/{render['registration_id']}"
    refused_name(client.patch(path, json={"server_name": f"com.render/{tag}"}, headers=user.headers),
                 "namespace_public_suffix")
    azure = submit(client, user, endpoint_url=f"https://evil-{tag}.eastus.cloudapp.azure.com/mcp")
    refused_name(client.patch(f"/registrations/{azure['registration_id']}", json={"server_name": f"com.azure/{tag}"},
                              headers=user.headers), "namespace_reserved")
    refused_name(client.patch(path, json={"server_name": f"io.github/{tag}"}, headers=user.headers),
                 "namespace_public_suffix")
    # The URL alone changes: the stored name's namespace must suit the new host.
    own = submit(client, user, endpoint_url=f"https://mcp-{tag}.render.com/mcp", server_name=f"com.render/own-{tag}")
    refused_name(client.patch(f"/registrations/{own['registration_id']}",
                              json={"endpoint_url": f"https://evil-{tag}.app.render.com/v2"}, headers=user.headers),
                 "namespace_public_suffix")
    # Where the domain is the host's own, both ways still work.
    moved = client.patch(f"/registrations/{own['registration_id']}",
                         json={"endpoint_url": f"https://api-{tag}.render.com/v2"}, headers=user.headers)
    assert moved.status_code == 200, moved.text
    renamed = client.patch(f"/registrations/{own['registration_id']}", json={"server_name": f"com.render/new-{tag}"},
                           headers=user.headers)
    assert renamed.status_code == 200, renamed.text


def test_the_reserved_namespaces_are_a_setting(permissive_api: str, user: Caller) -> None:
    tag = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=permissive_api, timeout=30) as client:
        for namespace in ("com.fabrikam", "com.northwind"):
            refused_name(client.post("/registrations", json=body(endpoint_url=f"https://mcp-{tag}.{namespace[4:]}.com/",
                                                                 server_name=f"{namespace}/{tag}"),
                                     headers=user.headers), "namespace_reserved")
        # The default list is replaced, not added to.
        assert submit(client, user, endpoint_url=f"https://evil-{tag}.eastus.cloudapp.azure.com/mcp",
                      server_name=f"com.azure/{tag}")
