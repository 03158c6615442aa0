"""Settings, read once from the environment and validated with messages that name the setting.

One object, `Settings`, holds every setting the app reads, in groups: the database (enough for
the migration tool on its own), Entra ID, endpoints, review and probes. `get_settings()` builds it
on first use and caches it for the life of the worker process; `reset_settings()` exists for tools
and tests that change the environment. The list of names the app reads is derived from this
object alone (tests/settings_names.py), and README, local.settings.json.example and the Bicep are
checked against it. Nothing else reads these names from the environment: validators get the
endpoint settings passed in (`shared.schemas.urls.validation_context`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from shared.endpoint_policy import IPNetwork, parse_networks
from shared.settings_reader import ConfigError as ConfigError  # raised here, caught by its users
from shared.settings_reader import Reader

DbAuth = Literal["password", "entra"]
FeedAuth = Literal["anonymous", "entra"]
DriftPolicy = Literal["flag", "withdraw"]

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
# Big platforms whose shared hosting domains are not all on the Public Suffix List (API.md).
DEFAULT_RESERVED_NAMESPACES = ("com.microsoft", "com.azure", "com.github", "io.github", "com.google",
                               "com.amazonaws", "com.openai", "com.anthropic")
_NAMESPACE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    auth: DbAuth
    pool_min_size: int
    pool_max_size: int
    connect_timeout: float
    command_timeout: float
    acquire_timeout: float
    # PgBouncer in transaction mode cannot keep prepared statements between transactions.
    statement_cache_size: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DatabaseSettings:
        read = Reader(os.environ if env is None else env)
        url = read.text("DATABASE_URL")
        if urlsplit(url).scheme not in ("postgres", "postgresql"):
            raise ConfigError("DATABASE_URL must start with postgresql:// (a libpq connection URI)")
        min_size = read.integer("DB_POOL_MIN_SIZE", 1, 0, 100)
        max_size = read.integer("DB_POOL_MAX_SIZE", 10, 1, 100)
        if min_size > max_size:
            raise ConfigError(f"DB_POOL_MIN_SIZE ({min_size}) must not exceed DB_POOL_MAX_SIZE ({max_size})")
        return cls(
            url=url,
            auth="entra" if read.choice("DB_AUTH", "password", ("password", "entra")) == "entra" else "password",
            pool_min_size=min_size,
            pool_max_size=max_size,
            connect_timeout=read.number("DB_CONNECT_TIMEOUT", 5.0, 0.1, 120.0),
            command_timeout=read.number("DB_COMMAND_TIMEOUT", 10.0, 0.1, 600.0),
            acquire_timeout=read.number("DB_ACQUIRE_TIMEOUT", 5.0, 0.1, 120.0),
            statement_cache_size=0 if read.flag("DB_PGBOUNCER") else 100,
        )


@dataclass(frozen=True, slots=True)
class EntraSettings:
    tenant_id: str
    api_client_id: str
    authority: str
    audiences: tuple[str, ...]
    admin_role: str
    admin_group_id: str | None
    required_scope: str | None
    allow_guests: bool
    graph_base_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EntraSettings:
        read = Reader(os.environ if env is None else env)
        environment = os.environ if env is None else env
        if not environment.get("ENTRA_API_CLIENT_ID") and environment.get("AZURE_CLIENT_ID"):
            raise ConfigError(
                "ENTRA_API_CLIENT_ID is required but not set. AZURE_CLIENT_ID is set: the API's "
                "client id moved to ENTRA_API_CLIENT_ID, because azure-identity reads "
                "AZURE_CLIENT_ID to choose a managed identity"
            )
        tenant_id = read.guid("ENTRA_TENANT_ID", required=True)
        client_id = read.text("ENTRA_API_CLIENT_ID")
        assert tenant_id is not None
        audiences = read.csv("ENTRA_AUDIENCES") or (client_id, f"api://{client_id}")
        return cls(
            tenant_id=tenant_id,
            api_client_id=client_id,
            authority=read.url("ENTRA_AUTHORITY", "https://login.microsoftonline.com"),
            audiences=audiences,
            admin_role=read.text("ENTRA_ADMIN_ROLE", "Registry.Admin"),
            admin_group_id=read.guid("ENTRA_ADMIN_GROUP_ID", required=False),
            required_scope=read.optional("ENTRA_REQUIRED_SCOPE"),
            allow_guests=read.flag("ENTRA_ALLOW_GUESTS"),
            graph_base_url=read.url("GRAPH_BASE_URL", "https://graph.microsoft.com"),
        )


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """What a registered endpoint URL may name: http, and IP networks that are otherwise refused."""

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    # Server-name namespaces only an administrator may give, unless the endpoint host reversed in full.
    reserved_namespaces: tuple[str, ...] = DEFAULT_RESERVED_NAMESPACES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EndpointSettings:
        read = Reader(os.environ if env is None else env)
        try:
            networks = parse_networks(read.csv("ALLOWED_ENDPOINT_NETWORKS"))
        except ValueError as error:
            raise ConfigError(f"ALLOWED_ENDPOINT_NETWORKS must list CIDRs separated by commas: {error}") from None
        reserved = tuple(name.lower() for name in read.csv("RESERVED_NAMESPACES")) or DEFAULT_RESERVED_NAMESPACES
        for name in reserved:
            if not _NAMESPACE.match(name):
                raise ConfigError(f"RESERVED_NAMESPACES must list reverse-DNS namespaces such as 'com.contoso', "
                                  f"separated by commas, got {name!r}")
        return cls(allow_http=read.flag("ALLOW_HTTP_ENDPOINTS"), allowed_networks=networks,
                   reserved_namespaces=reserved)


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """How decisions on revisions are made (API.md, *Revisions*)."""

    # A decision must name the revision it was made on (If-Match or a body `revision`).
    require_match: bool
    # An administrator may decide their own revisions, and their edit of an approved
    # registration is approved and published at once. Decisions only: accepting a drift always
    # takes another administrator (shared.policy, four eyes).
    allow_self_approval: bool
    # Registrations one submitter may have awaiting review at once.
    max_pending_per_user: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReviewSettings:
        read = Reader(os.environ if env is None else env)
        return cls(
            require_match=read.flag("REVIEW_REQUIRE_MATCH"),
            allow_self_approval=read.flag("REVIEW_ALLOW_SELF_APPROVAL"),
            max_pending_per_user=read.integer("MAX_PENDING_PER_USER", 20, 1, 1_000_000),
        )


_ORIGIN = re.compile(r"^https?://[^/\s]+$")
# A `_meta` key namespace as the MCP registry names its own: reverse-DNS labels, at least two.
_META_NAMESPACE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Notifications (API.md, *Notifications*): the timer's schedule, where people reach the
    registry (for links in messages), and the test-only retry delay."""

    # The Functions host reads it (%NOTIFY_SCHEDULE%); a valid schedule is always deployed.
    schedule: str = "*/10 * * * * *"
    # The API root as people reach it (behind a front door), e.g. https://registry.contoso.com/api.
    public_url: str | None = None
    # Test-only: every retry waits this many seconds instead of the backoff schedule.
    test_backoff_seconds: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        read = Reader(os.environ if env is None else env)
        schedule = read.text("NOTIFY_SCHEDULE", "*/10 * * * * *")
        if len(schedule.split()) not in (5, 6):
            raise ConfigError(f"NOTIFY_SCHEDULE must be an NCRONTAB expression of five or six fields, such as "
                              f"'*/10 * * * * *' (seconds first), got {schedule!r}")
        public_url = read.optional("REGISTRY_PUBLIC_URL")
        if public_url is not None and urlsplit(public_url).scheme not in ("http", "https"):
            raise ConfigError(f"REGISTRY_PUBLIC_URL must be an absolute http(s) URL, got {public_url!r}")
        backoff = read.optional("NOTIFY_TEST_BACKOFF_SECONDS")
        test_backoff = read.number("NOTIFY_TEST_BACKOFF_SECONDS", 0.0, 0.0, 3600.0) if backoff is not None else None
        return cls(schedule=schedule, public_url=public_url.rstrip("/") if public_url else None,
                   test_backoff_seconds=test_backoff)


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings
    entra: EntraSettings
    cors_origins: tuple[str, ...]
    log_level: str
    feed_auth: FeedAuth
    endpoints: EndpointSettings
    review: ReviewSettings
    # The feed's `_meta` key of the attestation: "<namespace>/attestation".
    meta_namespace: str
    probes: ProbeSettings
    # Seconds the feed answers from its snapshot before one statement checks it is still current.
    feed_snapshot_max_age: float
    # Seconds unknown-name lookups are counted in memory before one statement writes them.
    demand_flush_seconds: float
    notify: NotifySettings = NotifySettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        read = Reader(os.environ if env is None else env)
        origins = read.csv("CORS_ORIGINS")
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ConfigError(f"CORS_ORIGINS entries must look like https://host[:port], got {origin!r}")
        feed_auth = read.choice("REGISTRY_FEED_AUTH", "anonymous", ("anonymous", "entra"))
        namespace = read.text("REGISTRY_META_NAMESPACE", "internal.mcp-registry")
        if not _META_NAMESPACE.match(namespace) or len(namespace) > 200:
            raise ConfigError(f"REGISTRY_META_NAMESPACE must be a reverse-DNS name in lower case such as "
                              f"'com.contoso.registry', got {namespace!r}")
        endpoints = EndpointSettings.from_env(env)
        return cls(
            database=DatabaseSettings.from_env(env),
            entra=EntraSettings.from_env(env),
            cors_origins=origins,
            log_level=read.choice("LOG_LEVEL", "INFO", _LOG_LEVELS),
            feed_auth="entra" if feed_auth == "entra" else "anonymous",
            endpoints=endpoints,
            review=ReviewSettings.from_env(env),
            meta_namespace=namespace,
            feed_snapshot_max_age=read.number("FEED_SNAPSHOT_MAX_AGE", 30.0, 0.0, 3600.0),
            demand_flush_seconds=read.number("DEMAND_FLUSH_SECONDS", 60.0, 1.0, 3600.0),
            probes=ProbeSettings.from_env(env, endpoints=endpoints),
            notify=NotifySettings.from_env(env),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


@lru_cache(maxsize=1)
def get_endpoint_settings() -> EndpointSettings:
    """The endpoint rules alone, for the namespace rule of shared/services/namespaces.py, which the
    audit tool also runs without the rest of the settings. No validator reads it: they are given
    the endpoint settings (`shared.schemas.urls.validation_context`)."""
    return EndpointSettings.from_env()


def reset_settings() -> None:
    get_settings.cache_clear()
    get_endpoint_settings.cache_clear()


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """Attestation probes: off unless PROBE_ENABLED is true (API.md, *Attestation*). PROBE_SCHEDULE is
    the timer's NCRONTAB expression, read by the Functions host; it is deployed even while probing
    is off, because an empty schedule fails the timer's indexing and disables the function on Azure
    (azure-functions-host #10346). The egress guard admits what the endpoint rules admit
    (`EndpointSettings`)."""

    enabled: bool
    schedule: str | None
    batch_size: int
    concurrency: int
    endpoints: EndpointSettings
    # flag: a drifted server is marked; withdraw: it is also deprecated in the feed until accepted.
    drift_policy: DriftPolicy = "flag"
    # Probes kept per registration by the round's pruning, besides the baseline's, the latest `ok`
    # one of the published revision and those the audit trail names.
    history: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 endpoints: EndpointSettings | None = None) -> ProbeSettings:
        read = Reader(os.environ if env is None else env)
        enabled = read.flag("PROBE_ENABLED")
        schedule = read.optional("PROBE_SCHEDULE")
        # The host's NCrontab takes five fields (minute first) or six (second first), as the
        # timer trigger documents (https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
        if schedule is not None and len(schedule.split()) not in (5, 6):
            raise ConfigError(f"PROBE_SCHEDULE must be an NCRONTAB expression of five or six fields, such as "
                              f"'0 */15 * * * *' (seconds first) or '*/15 * * * *', got {schedule!r}")
        if enabled and schedule is None:
            raise ConfigError("PROBE_SCHEDULE is required while PROBE_ENABLED is true: the timer trigger "
                              "reads its schedule from it")
        policy = read.choice("DRIFT_POLICY", "flag", ("flag", "withdraw"))
        return cls(enabled=enabled, schedule=schedule, batch_size=read.integer("PROBE_BATCH_SIZE", 100, 1, 10_000),
                   concurrency=read.integer("PROBE_CONCURRENCY", 16, 1, 256),
                   endpoints=endpoints or EndpointSettings.from_env(env),
                   drift_policy="withdraw" if policy == "withdraw" else "flag",
                   history=read.integer("PROBE_HISTORY", 50, 1, 10_000))


def get_probe_settings() -> ProbeSettings:
    """The probe group of the one `Settings` object."""
    return get_settings().probes
