"""List the live registrations that today's submission rules would refuse, changing nothing.

    python -m tools.audit_registrations          # one line per broken rule
    python -m tools.audit_registrations --json   # the same as a JSON array

Rows submitted before a rule existed stay as they are (no migration rewrites what people
submitted or what the feed publishes); this report tells an operator which ones to look at and
why. Each finding names the registration, its status, the field, the rule (the `errors[].type`
the API answers with today) and what is wrong. Three more rules only an existing row can break:
`url_not_normalised` (the stored URL differs from its normalised form, so an equivalent spelling
could still be submitted beside it), `url_equivalent_duplicate` (live rows whose URLs
normalise to the same one, a trailing `/` of the path ignored as uniqueness ignores it) and
`url_trailing_slash_dropped` (a URL stored before trailing slashes were kept, with a non-root path
and no trailing `/`: the old rule removed one if it was submitted, and nothing recorded whether it
was, so an administrator should ask the owner which one the server answers at, migration 0009
having recorded those URLs); `text_not_normalised` is a name or tool name that NFKC and trimming
would change. A `server_name` is held to the namespace rule (`namespace_mismatch`,
`namespace_public_suffix`, `namespace_reserved`) unless an administrator submitted the latest
revision, as the API holds it.

Reads DATABASE_URL (and DB_AUTH, as the app does) and the endpoint settings
ALLOW_HTTP_ENDPOINTS, ALLOWED_ENDPOINT_NETWORKS and RESERVED_NAMESPACES, so it judges as the
running app would.
Exit status: 0 when no live registration breaks a rule, 1 when some do, 2 when the settings are
wrong or the database cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from shared.config import ConfigError, DatabaseSettings, EndpointSettings
from shared.db import UNAVAILABLE_ERRORS, connect_options
from shared.endpoint_policy import namespace_rule
from shared.schemas.registrations import Description, EndpointName, OwnerContact, ToolNames, Version
from shared.schemas.text import check_text
from shared.schemas.urls import claim_key, normalise_url
from shared.services import namespaces

LIVE_ROWS = """
SELECT r.registration_id, r.status, r.endpoint_url, r.endpoint_name, r.description, r.owner_contact,
       r.available_tools, r.version, r.status_reason, r.server_name, coalesce(u.is_admin, false) AS by_admin,
       EXISTS (SELECT 1 FROM trailing_slash_review AS t
               WHERE t.registration_id = r.registration_id AND t.endpoint_url = r.endpoint_url) AS slash_unknown
FROM registrations AS r
LEFT JOIN registration_revisions AS v ON v.registration_id = r.registration_id AND v.revision = r.revision
LEFT JOIN users AS u ON u.user_id = coalesce(v.submitted_by, r.submitter_id)
WHERE r.deleted_at IS NULL
ORDER BY r.created_at, r.registration_id
"""


@dataclass(frozen=True)
class Finding:
    registration_id: str
    status: str
    field: str
    rule: str
    message: str

    def line(self) -> str:
        return f"{self.registration_id}  {self.status:<8}  {self.field:<15}  {self.rule:<26}  {self.message}"


def _reason(value: str) -> str:
    return check_text(value, multiline=True)


# Each field's rules as the API applies them; a value they would change was stored un-normalised.
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "endpoint_name": TypeAdapter(EndpointName).validate_python,
    "description": TypeAdapter(Description).validate_python,
    "owner_contact": TypeAdapter(OwnerContact).validate_python,
    "available_tools": TypeAdapter(ToolNames).validate_python,
    "version": TypeAdapter(Version).validate_python,
    "status_reason": _reason,
}
_NORMALISED_FIELDS = ("endpoint_name", "available_tools")


def _check(rules: Callable[[Any], Any], value: Any, make: Callable[[str, str], Finding]) -> tuple[Any, list[Finding]]:
    try:
        return rules(value), []
    except ValidationError as error:
        return None, [make(item["type"], item["msg"]) for item in error.errors(include_url=False)]
    except PydanticCustomError as error:
        # The URL and text rules raise it directly when called outside a model.
        return None, [make(error.type, error.message())]


def _with_slash(url: str) -> str:
    before, mark, query = url.partition("?")
    return f"{before}/{mark}{query}"


def findings_for(row: dict[str, Any], settings: EndpointSettings) -> tuple[list[Finding], str | None]:
    """What `row` breaks, and its normalised URL (None when the URL itself is refused)."""
    identity, status = str(row["registration_id"]), row["status"]
    found: list[Finding] = []

    def maker(field: str) -> Callable[[str, str], Finding]:
        return lambda rule, message: Finding(identity, status, field, rule, message)

    url, url_findings = _check(lambda value: normalise_url(value, settings), row["endpoint_url"], maker("endpoint_url"))
    found += url_findings
    if url is not None and url != row["endpoint_url"]:
        found.append(maker("endpoint_url")("url_not_normalised", f"is stored un-normalised; normalised it is {url}"))
    if url is not None and row.get("slash_unknown"):
        found.append(maker("endpoint_url")("url_trailing_slash_dropped", (
            f"was stored before trailing slashes were kept, when a submitted '/' at the end of the path was "
            f"removed: it may have been submitted as {_with_slash(url)}, and clients compare the published URL "
            "byte for byte; ask the owner which one the server answers at, and edit it if it is that one")))
    if url is not None and row.get("server_name") and not row.get("by_admin"):
        rule = namespace_rule(namespaces.namespace_of(row["server_name"]), namespaces.host_of(url),
                              settings.reserved_namespaces)
        if rule is not None:
            found.append(maker("server_name")(rule, namespaces.refusal(row["server_name"], url, rule).errors[0]["msg"]))
    for field, rules in _FIELDS.items():
        value = row[field]
        if value is None:
            continue
        normalised, field_findings = _check(rules, value, maker(field))
        found += field_findings
        if field in _NORMALISED_FIELDS and normalised is not None and normalised != value:
            found.append(maker(field)("text_not_normalised", "NFKC normalisation and trimming would change it"))
    return found, url


async def audit(database: DatabaseSettings, endpoints: EndpointSettings) -> list[Finding]:
    connection: asyncpg.Connection = await asyncpg.connect(**connect_options(database))
    try:
        await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        found: list[Finding] = []
        by_url: dict[str, list[tuple[str, str]]] = defaultdict(list)
        # A read-only transaction: the report can never change a row, and a cursor streams big tables.
        async with connection.transaction(readonly=True):
            async for record in connection.cursor(LIVE_ROWS):
                row = dict(record)
                row_findings, url = findings_for(row, endpoints)
                found += row_findings
                if url is not None:
                    by_url[claim_key(url)].append((str(row["registration_id"]), row["status"]))
        for url, rows in by_url.items():
            if len(rows) > 1:
                for identity, status in rows:
                    others = ", ".join(other for other, _ in rows if other != identity)
                    found.append(Finding(identity, status, "endpoint_url", "url_equivalent_duplicate",
                                         f"normalises to {url} (a trailing '/' of its path ignored), as "
                                         f"registration(s) {others} do"))
        return found
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.audit_registrations",
        description="List live registrations that the current submission rules would refuse, with the rule each "
                    "breaks. Reads DATABASE_URL, ALLOW_HTTP_ENDPOINTS and ALLOWED_ENDPOINT_NETWORKS; changes nothing.",
        epilog="Exit status: 0 nothing found, 1 findings listed, 2 configuration or database error.",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON array")
    args = parser.parse_args(argv)
    try:
        found = asyncio.run(audit(DatabaseSettings.from_env(), EndpointSettings.from_env()))
    except ConfigError as error:
        print(f"audit_registrations: configuration error: {error}", file=sys.stderr)
        return 2
    except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError) as error:
        print(f"audit_registrations: cannot read the registrations ({type(error).__name__}: {error})",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(finding) for finding in found], indent=2))
    else:
        for finding in found:
            print(finding.line())
        rows = len({finding.registration_id for finding in found})
        print(f"{len(found)} finding(s) in {rows} live registration(s)" if found
              else "every live registration passes the current rules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
