"""Mint a development access token, signed with the local authority's key in .data/authority/.

    python -m tools.token [--name Ada] [--email ada@example.com] [--admin] [--scope access_as_user]
                          [--lifetime 3600] [--oid GUID]

The API accepts it when ENTRA_AUTHORITY points at `python -m tools.authority` started with the
same key folder, as `make run` arranges. Tenant, client id, authority URL and admin role come
from the environment, then from local.settings.json, as they do for the dev host. Only the token
is printed, so `TOKEN=$(make token ARGS="--admin")` works.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import uuid
from pathlib import Path

from tools.authority import (
    DEFAULT_CLIENT_ID,
    DEFAULT_KEY_DIR,
    DEFAULT_SCOPE,
    DEFAULT_TENANT_ID,
    DevAuthority,
    SigningKey,
)
from tools.devhost import load_local_settings

DEFAULT_AUTHORITY_URL = "http://127.0.0.1:7072"


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _guid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError("must be a GUID") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.token", description="Mint a development access token signed with the dev authority's key."
    )
    parser.add_argument("--name", default="Dev User", help="display name (the `name` claim); default 'Dev User'")
    parser.add_argument("--email", help="e-mail (`email`, `preferred_username`); default derived from --name")
    parser.add_argument("--admin", action="store_true", help="add the admin app role (ENTRA_ADMIN_ROLE) to `roles`")
    parser.add_argument("--scope", action="append", metavar="SCOPE",
                        help=f"a delegated scope for `scp`; repeat for several (default {DEFAULT_SCOPE})")
    parser.add_argument("--lifetime", type=_positive, default=3600, metavar="SECONDS",
                        help="seconds until the token expires (default 3600)")
    parser.add_argument("--oid", type=_guid, help="the user's object id; default derived from --name, so it is stable")
    parser.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR,
                        help=f"folder of the authority's signing key (default {DEFAULT_KEY_DIR})")
    return parser


def mint(args: argparse.Namespace) -> str:
    authority = DevAuthority(
        tenant_id=os.environ.get("ENTRA_TENANT_ID") or DEFAULT_TENANT_ID,
        client_id=os.environ.get("ENTRA_API_CLIENT_ID") or DEFAULT_CLIENT_ID,
        keys=[SigningKey.load_or_create(args.key_dir)],
        base_url=os.environ.get("ENTRA_AUTHORITY") or DEFAULT_AUTHORITY_URL,
    )
    email = args.email or f"{re.sub(r'[^a-z0-9]+', '.', args.name.lower()).strip('.') or 'dev'}@example.com"
    roles = (os.environ.get("ENTRA_ADMIN_ROLE") or "Registry.Admin",) if args.admin else ()
    claims = authority.claims(oid=args.oid, name=args.name, email=email, scopes=tuple(args.scope or [DEFAULT_SCOPE]),
                              roles=roles, lifetime=args.lifetime)
    return authority.sign(claims)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    load_local_settings()
    print(mint(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
