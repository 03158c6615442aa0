"""`python -m tools.audit_registrations` on a database filled, through SQL, with rows from before
the submission rules (and before migration 0009 kept trailing slashes): it lists each live row's
broken rules, and changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest

from shared.config import DatabaseSettings
from tests.support import APP_ROLE, PROJECT_ROOT, PostgresCluster, Sql, grant_app_role, run
from tools.migrate import MIGRATIONS_DIR, migrate

# (endpoint_url, endpoint_name, description, owner_contact, available_tools, status, deleted)
ROWS: list[tuple[str, str, str | None, str, list[str], str, bool]] = [
    ("https://mcp.contoso.com/weather", "Weather Tools", "Fine.", "weather@contoso.com", ["forecast"], "Approved",
     False),
    ("http://169.254.169.254/latest/meta-data", "Metadata", None, "ops@contoso.com", [], "Approved", False),
    ("https://127.0.0.1:11434/api", "Local Model", None, "ops@contoso.com", [], "Pending", False),
    ("https://weather-fn.azurewebsites.net/api/mcp?code=k3y", "Function", None, "ops@contoso.com", [], "Approved",
     False),
    ("https://Tickets.Contoso.com./mcp/", "Ticket Desk", None, "helpdesk@contoso.com", [], "Approved", False),
    ("https://dup.contoso.com/weather", "Dup One", None, "ops@contoso.com", [], "Approved", False),
    ("https://dup.contoso.com/%77eather", "Dup Two", None, "ops@contoso.com", [], "Pending", False),
    ("https://names.contoso.com/a", "Contoso Weather \u202edce812-LLAB\u202c", "Zero\u200bwidth",
     "ceo\u202e@contoso.com", ["ｆｏｒｅｃａｓｔ"], "Rejected", False),
    ("https://2130706433/", "Deleted Already", None, "ops@contoso.com", [], "Approved", True),
    # What the rules of issue 20 refuse (from index 9 on).
    ("https://graph.contoso.com/mcp", "\u041c\u0456\u0441rosoft Graph", None, "ops@contoso.com", ["\u3164"],
     "Approved", False),
    ("https://apim.contoso.com/mcp?subscription-key=k3y", "Keyed", None, "ops@contoso.com", [], "Approved", False),
    ("https://[fec0::1]/mcp", "Site Local", None, "ops@contoso.com", [], "Pending", False),
    ("https://" + "a" * 64 + ".contoso.com/mcp", "Long Label", None, "ops@contoso.com", [], "Pending", False),
    ("https://attacker.github.io/mcp", "GitHub MCP", None, "ops@contoso.com", [], "Approved", False),
    ("https://evil.eastus.cloudapp.azure.com/mcp", "Azure MCP", None, "ops@contoso.com", [], "Approved", False),
    # Both spellings, stored raw before URLs were normalised: one endpoint to uniqueness (with row 4).
    ("https://tickets.contoso.com/mcp", "Ticket Desk Two", None, "helpdesk@contoso.com", [], "Approved", False),
    ("https://tickets.contoso.com/mcp/", "Ticket Desk Three", None, "helpdesk@contoso.com", [], "Pending", False),
]
# Server names other than com.contoso/legacy-<index>.
SERVER_NAMES = {13: "io.github/github-mcp-server", 14: "com.azure/azure-mcp"}


def expected_lines(ids: list[str]) -> list[str]:
    def line(index: int, status: str, field: str, rule: str, message: str) -> str:
        return f"{ids[index]}  {status:<8}  {field:<15}  {rule:<26}  {message}"

    def slash(index: int, status: str, url: str) -> str:
        return line(index, status, "endpoint_url", "url_trailing_slash_dropped",
                    "was stored before trailing slashes were kept, when a submitted '/' at the end of the path was "
                    f"removed: it may have been submitted as {url}, and clients compare the published URL byte for "
                    "byte; ask the owner which one the server answers at, and edit it if it is that one")

    def duplicate(index: int, status: str, url: str, *others: int) -> str:
        return line(index, status, "endpoint_url", "url_equivalent_duplicate",
                    f"normalises to {url} (a trailing '/' of its path ignored), as registration(s) "
                    f"{', '.join(ids[other] for other in others)} do")

    address = ("names {}, which published clients must not be sent to; register a public host name, or ask an "
               "operator to list the network in ALLOWED_ENDPOINT_NETWORKS")
    return [
        slash(0, "Approved", "https://mcp.contoso.com/weather/"),
        line(1, "Approved", "endpoint_url", "url_scheme",
             "must use https: clients send their tokens to this endpoint; serve it over TLS (http is admitted only "
             "where an operator sets ALLOW_HTTP_ENDPOINTS=true)"),
        line(2, "Pending", "endpoint_url", "url_address_refused", address.format("a loopback address")),
        line(3, "Approved", "endpoint_url", "url_credential_parameter",
             "carries a credential in its query parameter 'code'; published URLs are public, so remove it and have "
             "clients send the secret in a header"),
        line(4, "Approved", "endpoint_url", "url_not_normalised",
             "is stored un-normalised; normalised it is https://tickets.contoso.com/mcp/"),
        slash(5, "Approved", "https://dup.contoso.com/weather/"),
        line(6, "Pending", "endpoint_url", "url_not_normalised",
             "is stored un-normalised; normalised it is https://dup.contoso.com/weather"),
        slash(6, "Pending", "https://dup.contoso.com/weather/"),
        slash(7, "Rejected", "https://names.contoso.com/a/"),
        line(7, "Rejected", "endpoint_name", "text_invisible_character",
             "contains the invisible or direction-changing character U+202E (a bidi control, zero-width, "
             "private-use or separator character), which can make text render as something else; remove it"),
        line(7, "Rejected", "description", "text_invisible_character",
             "contains the invisible or direction-changing character U+200B (a bidi control, zero-width, "
             "private-use or separator character), which can make text render as something else; remove it"),
        line(7, "Rejected", "owner_contact", "email_not_ascii",
             "must be an ASCII e-mail address; write an internationalised domain in its xn-- form (as the "
             "domain's DNS name) and use an ASCII mailbox name"),
        line(7, "Rejected", "available_tools", "text_not_normalised",
             "NFKC normalisation and trimming would change it"),
        slash(9, "Approved", "https://graph.contoso.com/mcp/"),
        line(9, "Approved", "endpoint_name", "text_mixed_script",
             "mixes scripts: U+041C CYRILLIC CAPITAL LETTER EM among letters of another script, which lets one name "
             "pass for another; write it in one script (Latin may stand beside Han, Hiragana, Katakana, Bopomofo "
             "or Hangul)"),
        line(9, "Approved", "available_tools", "text_ignorable_character",
             "contains U+3164, a character that displays as nothing (a variation selector, combining grapheme "
             "joiner, filler or blank pattern), so the text would not read as what it holds; remove it"),
        line(10, "Approved", "endpoint_url", "url_credential_parameter",
             "carries a credential in its query parameter 'subscription_key'; published URLs are public, so remove "
             "it and have clients send the secret in a header"),
        line(11, "Pending", "endpoint_url", "url_address_refused", address.format(
            "a site-local address (deprecated by RFC 3879, routed only inside a site)")),
        line(12, "Pending", "endpoint_url", "url_host_label_too_long",
             "names a host with a label longer than 63 characters, which DNS cannot hold; register the host name "
             "clients resolve"),
        slash(13, "Approved", "https://attacker.github.io/mcp/"),
        line(13, "Approved", "server_name", "namespace_public_suffix",
             "server_name 'io.github/github-mcp-server' names a shared suffix under which anyone can have a host "
             "(Public Suffix List), not a domain of the endpoint host 'attacker.github.io': use "
             "io.github.attacker/... (the host's labels reversed, or a parent domain down to its registrable "
             "domain), or ask an administrator to submit it"),
        slash(14, "Approved", "https://evil.eastus.cloudapp.azure.com/mcp/"),
        line(14, "Approved", "server_name", "namespace_reserved",
             "server_name 'com.azure/azure-mcp' is in the reserved namespace 'com.azure' (RESERVED_NAMESPACES), "
             "which only an administrator may give, unless it is the endpoint host "
             "'evil.eastus.cloudapp.azure.com' reversed in full: use com.azure.cloudapp.eastus.evil/... (the host's "
             "labels reversed, or a parent domain down to its registrable domain), or ask an administrator to "
             "submit it"),
        slash(15, "Approved", "https://tickets.contoso.com/mcp/"),
        duplicate(4, "Approved", "https://tickets.contoso.com/mcp", 15, 16),
        duplicate(15, "Approved", "https://tickets.contoso.com/mcp", 4, 16),
        duplicate(16, "Pending", "https://tickets.contoso.com/mcp", 4, 15),
        duplicate(5, "Approved", "https://dup.contoso.com/weather", 6),
        duplicate(6, "Pending", "https://dup.contoso.com/weather", 5),
        "29 finding(s) in 16 live registration(s)",
    ]


@pytest.fixture
def legacy_database(postgres: PostgresCluster, tmp_path: Path) -> tuple[str, list[str]]:
    """A database holding the rows above, written as they were before the rules, oldest first, then
    migrated to the current schema (0009 on, as a deployment that had the rows would be)."""
    before = tmp_path / "before_0009"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0009":
            shutil.copy(path, before / path.name)
    url = postgres.create_database("registry_audit")
    run(migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), before, quiet=True))
    sql = Sql(url)
    submitter = sql.fetchval("INSERT INTO users (entra_id, email, display_name) VALUES ($1, NULL, 'Old') "
                             "RETURNING user_id", str(uuid.uuid4()))
    ids = []
    for index, (endpoint_url, name, description, contact, tools, status, deleted) in enumerate(ROWS):
        ids.append(str(sql.fetchval(
            """INSERT INTO registrations (endpoint_url, endpoint_name, description, owner_contact, available_tools,
                   status, submitter_id, server_name, created_at, deleted_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() - make_interval(mins => 100 - $9),
                       CASE WHEN $10 THEN now() END)
               RETURNING registration_id""",
            endpoint_url, name, description, contact, tools, status, submitter,
            SERVER_NAMES.get(index, f"com.contoso/legacy-{index}"),
            index, deleted)))
    run(migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), quiet=True))
    run(grant_app_role(url, APP_ROLE))
    return url, ids


def audit(environment: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items()
             if key not in ("DATABASE_URL", "ALLOW_HTTP_ENDPOINTS", "ALLOWED_ENDPOINT_NETWORKS", "RESERVED_NAMESPACES")}
    return subprocess.run([sys.executable, "-m", "tools.audit_registrations", *args], cwd=PROJECT_ROOT,
                          env={**clean, **environment}, capture_output=True, text=True, timeout=120)


def snapshot(sql: Sql) -> list[tuple[object, ...]]:
    return [tuple(row) for row in sql.fetch("SELECT * FROM registrations ORDER BY registration_id")]


def test_lists_each_live_row_with_the_rule_it_breaks_and_changes_nothing(
    legacy_database: tuple[str, list[str]]
) -> None:
    url, ids = legacy_database
    sql = Sql(url)
    before = snapshot(sql)
    result = audit({"DATABASE_URL": url})
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout.splitlines() == expected_lines(ids)
    assert snapshot(sql) == before


def test_json_output_and_the_endpoint_settings_are_honoured(legacy_database: tuple[str, list[str]]) -> None:
    url, ids = legacy_database
    result = audit({"DATABASE_URL": url, "ALLOW_HTTP_ENDPOINTS": "true",
                    "ALLOWED_ENDPOINT_NETWORKS": "169.254.169.254/32, 127.0.0.0/8"}, "--json")
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)
    assert {(finding["registration_id"], finding["rule"]) for finding in findings
            if finding["field"] == "endpoint_url"} == {
        (ids[3], "url_credential_parameter"), (ids[4], "url_not_normalised"), (ids[6], "url_not_normalised"),
        (ids[5], "url_equivalent_duplicate"), (ids[6], "url_equivalent_duplicate"),
        (ids[4], "url_equivalent_duplicate"), (ids[15], "url_equivalent_duplicate"),
        (ids[16], "url_equivalent_duplicate"),
        (ids[10], "url_credential_parameter"), (ids[11], "url_address_refused"), (ids[12], "url_host_label_too_long"),
        # The admitted http and internal URLs are judged for their slash too.
        *((ids[index], "url_trailing_slash_dropped") for index in (0, 1, 2, 5, 6, 7, 9, 13, 14, 15)),
    }
    assert {(finding["registration_id"], finding["rule"]) for finding in findings
            if finding["field"] == "server_name"} == {
        # Admitted URLs now, so their names are judged: an IP literal is no host of com.contoso.
        (ids[1], "namespace_mismatch"), (ids[2], "namespace_mismatch"),
        (ids[13], "namespace_public_suffix"), (ids[14], "namespace_reserved")}
    assert set(findings[0]) == {"registration_id", "status", "field", "rule", "message"}


def test_migration_0009_keys_the_claims_without_the_trailing_slash(legacy_database: tuple[str, list[str]]) -> None:
    url, ids = legacy_database
    sql = Sql(url)
    claims = {row["value"]: str(row["registration_id"]) for row in sql.fetch(
        "SELECT value, registration_id FROM registration_claims WHERE field = 'endpoint_url' "
        "AND registration_id IS NOT NULL AND value ILIKE '%tickets.contoso.com%'")}
    # Rows 15 and 16 held a claim each before; now one endpoint, the older keeps it.
    assert claims == {"https://Tickets.Contoso.com./mcp": ids[4], "https://tickets.contoso.com/mcp": ids[15]}
    # What the old rule may have changed: live rows with a non-root path and no trailing slash.
    recorded = {str(row["registration_id"]) for row in sql.fetch("SELECT registration_id FROM trailing_slash_review")}
    assert recorded == {ids[index] for index in (0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15)}


def test_a_url_stored_since_slashes_are_kept_is_not_listed(legacy_database: tuple[str, list[str]]) -> None:
    url, ids = legacy_database
    sql = Sql(url)
    # Row 0 edited to its URL with the slash, and a row written after the migration without one.
    sql.execute("UPDATE registrations SET endpoint_url = 'https://mcp.contoso.com/weather/' "
                "WHERE registration_id = $1", uuid.UUID(ids[0]))
    fresh = str(sql.fetchval(
        "INSERT INTO registrations (endpoint_url, endpoint_name, owner_contact, status, submitter_id, server_name) "
        "SELECT 'https://fresh.contoso.com/mcp', 'Fresh', 'ops@contoso.com', 'Approved', submitter_id, "
        "'com.contoso.fresh/mcp' FROM registrations LIMIT 1 RETURNING registration_id"))
    findings = json.loads(audit({"DATABASE_URL": url}, "--json").stdout)
    listed = {finding["registration_id"] for finding in findings if finding["rule"] == "url_trailing_slash_dropped"}
    assert listed == {ids[index] for index in (5, 6, 7, 9, 13, 14, 15)}
    assert fresh not in {finding["registration_id"] for finding in findings}


def test_the_namespace_rule_follows_the_settings_and_spares_administrators(
    legacy_database: tuple[str, list[str]]
) -> None:
    url, ids = legacy_database
    result = audit({"DATABASE_URL": url, "RESERVED_NAMESPACES": "com.fabrikam"}, "--json")
    findings = json.loads(result.stdout)
    assert [(finding["registration_id"], finding["rule"]) for finding in findings
            if finding["field"] == "server_name"] == [(ids[13], "namespace_public_suffix")]
    sql = Sql(url)
    sql.execute("UPDATE users SET is_admin = true")
    findings = json.loads(audit({"DATABASE_URL": url}, "--json").stdout)
    assert [finding for finding in findings if finding["field"] == "server_name"] == []


def test_a_clean_database_exits_0(postgres: PostgresCluster) -> None:
    url = postgres.migrated_database("registry_audit")
    result = audit({"DATABASE_URL": url})
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "every live registration passes the current rules\n", "")


def test_help_and_configuration_errors(postgres: PostgresCluster) -> None:
    helped = audit({}, "--help")
    assert helped.returncode == 0
    assert "DATABASE_URL" in helped.stdout
    assert "Exit status: 0 nothing found, 1 findings listed, 2 configuration or database error." in " ".join(
        helped.stdout.split())
    missing = audit({})
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == "audit_registrations: configuration error: DATABASE_URL is required but not set\n"
    bad_network = audit({"DATABASE_URL": postgres.admin_url, "ALLOWED_ENDPOINT_NETWORKS": "intranet"})
    assert bad_network.returncode == 2
    assert bad_network.stderr.startswith("audit_registrations: configuration error: ALLOWED_ENDPOINT_NETWORKS")
    no_table = audit({"DATABASE_URL": postgres.create_database("registry_audit_empty")})
    assert no_table.returncode == 2
    assert no_table.stderr.startswith("audit_registrations: cannot read the registrations (UndefinedTableError")
