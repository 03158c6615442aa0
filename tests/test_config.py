"""Settings: read from the environment, validated once, with messages that name the setting."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest

from shared.config import (
    ConfigError,
    DatabaseSettings,
    EndpointSettings,
    EntraSettings,
    ProbeSettings,
    ReviewSettings,
    Settings,
    get_endpoint_settings,
    get_probe_settings,
    get_settings,
    reset_settings,
)
from tests.settings_names import (
    LOCAL_HOST_SETTINGS,
    NOT_IN_LOCAL_EXAMPLE,
    PLATFORM_SETTINGS,
    settings_the_app_reads,
)

ROOT = Path(__file__).resolve().parent.parent

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "6c1f3c2e-3b7a-4a8e-9d43-0f6f1d6a2b10"
REQUIRED = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/registry",
    "ENTRA_TENANT_ID": TENANT_ID,
    "ENTRA_API_CLIENT_ID": CLIENT_ID,
}


def settings_with(**changes: str | None) -> Settings:
    """Settings from the required values with `changes` applied; None removes a setting."""
    environment = dict(REQUIRED)
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return Settings.from_env(environment)


def config_error(**changes: str | None) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_with(**changes)
    return str(caught.value)


def test_defaults_fill_everything_but_the_three_required_settings() -> None:
    assert settings_with() == Settings(
        database=DatabaseSettings(
            url="postgresql://postgres@127.0.0.1:5432/registry",
            auth="password",
            pool_min_size=1,
            pool_max_size=10,
            connect_timeout=5.0,
            command_timeout=10.0,
            acquire_timeout=5.0,
            statement_cache_size=100,
        ),
        entra=EntraSettings(
            tenant_id=TENANT_ID,
            api_client_id=CLIENT_ID,
            authority="https://login.microsoftonline.com",
            audiences=(CLIENT_ID, f"api://{CLIENT_ID}"),
            admin_role="Registry.Admin",
            admin_group_id=None,
            required_scope=None,
            allow_guests=False,
            graph_base_url="https://graph.microsoft.com",
        ),
        cors_origins=(),
        log_level="INFO",
        feed_auth="anonymous",
        endpoints=EndpointSettings(allow_http=False, allowed_networks=()),
        review=ReviewSettings(require_match=False, allow_self_approval=False, max_pending_per_user=20),
        meta_namespace="internal.mcp-registry",
        probes=ProbeSettings(enabled=False, schedule=None, batch_size=100, concurrency=16,
                             endpoints=EndpointSettings(allow_http=False, allowed_networks=()),
                             drift_policy="flag", history=50),
        feed_snapshot_max_age=30.0,
        demand_flush_seconds=60.0,
    )


def test_review_settings_are_read() -> None:
    review = settings_with(REVIEW_REQUIRE_MATCH="true", REVIEW_ALLOW_SELF_APPROVAL="yes",
                           MAX_PENDING_PER_USER="3").review
    assert review == ReviewSettings(require_match=True, allow_self_approval=True, max_pending_per_user=3)


@pytest.mark.parametrize("name", ["DATABASE_URL", "ENTRA_TENANT_ID", "ENTRA_API_CLIENT_ID"])
def test_each_missing_required_setting_is_named(name: str) -> None:
    assert config_error(**{name: None}) == f"{name} is required but not set"


@pytest.mark.parametrize("name", ["DATABASE_URL", "ENTRA_TENANT_ID", "ENTRA_API_CLIENT_ID"])
def test_a_blank_required_setting_counts_as_missing(name: str) -> None:
    assert config_error(**{name: "   "}) == f"{name} is required but not set"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"DB_POOL_MAX_SIZE": "abc"}, "DB_POOL_MAX_SIZE must be a whole number, got 'abc'"),
        ({"DB_POOL_MAX_SIZE": "0"}, "DB_POOL_MAX_SIZE must be between 1 and 100, got 0"),
        ({"DB_POOL_MIN_SIZE": "20", "DB_POOL_MAX_SIZE": "5"},
         "DB_POOL_MIN_SIZE (20) must not exceed DB_POOL_MAX_SIZE (5)"),
        ({"DB_CONNECT_TIMEOUT": "soon"}, "DB_CONNECT_TIMEOUT must be a number of seconds, got 'soon'"),
        ({"DB_AUTH": "kerberos"}, "DB_AUTH must be one of password, entra, got 'kerberos'"),
        ({"DB_PGBOUNCER": "maybe"}, "DB_PGBOUNCER must be true or false, got 'maybe'"),
        ({"DATABASE_URL": "mysql://root@127.0.0.1/registry"},
         "DATABASE_URL must start with postgresql:// (a libpq connection URI)"),
        ({"ENTRA_TENANT_ID": "not-a-guid"}, "ENTRA_TENANT_ID must be a GUID, got 'not-a-guid'"),
        ({"ENTRA_ADMIN_GROUP_ID": "admins"}, "ENTRA_ADMIN_GROUP_ID must be a GUID, got 'admins'"),
        ({"ENTRA_AUTHORITY": "http://evil.example.com"},
         "ENTRA_AUTHORITY must be an https URL (http only on a loopback host), got 'http://evil.example.com'"),
        ({"ENTRA_AUTHORITY": "https:///tenant"},
         "ENTRA_AUTHORITY must be an https URL (http only on a loopback host), got 'https:///tenant'"),
        ({"ENTRA_ALLOW_GUESTS": "sometimes"}, "ENTRA_ALLOW_GUESTS must be true or false, got 'sometimes'"),
        ({"CORS_ORIGINS": "localhost:5173"},
         "CORS_ORIGINS entries must look like https://host[:port], got 'localhost:5173'"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG, got 'verbose'"),
        ({"REGISTRY_FEED_AUTH": "basic"}, "REGISTRY_FEED_AUTH must be one of anonymous, entra, got 'basic'"),
        ({"ALLOW_HTTP_ENDPOINTS": "perhaps"}, "ALLOW_HTTP_ENDPOINTS must be true or false, got 'perhaps'"),
        ({"ALLOWED_ENDPOINT_NETWORKS": "10.0.0.0/8, intranet"},
         "ALLOWED_ENDPOINT_NETWORKS must list CIDRs separated by commas: "
         "'intranet' is not a network in CIDR form, such as 10.20.0.0/16"),
        ({"REVIEW_REQUIRE_MATCH": "strict"}, "REVIEW_REQUIRE_MATCH must be true or false, got 'strict'"),
        ({"REVIEW_ALLOW_SELF_APPROVAL": "2"}, "REVIEW_ALLOW_SELF_APPROVAL must be true or false, got '2'"),
        ({"MAX_PENDING_PER_USER": "0"}, "MAX_PENDING_PER_USER must be between 1 and 1000000, got 0"),
        ({"MAX_PENDING_PER_USER": "many"}, "MAX_PENDING_PER_USER must be a whole number, got 'many'"),
        ({"REGISTRY_META_NAMESPACE": "Internal/Registry"}, "REGISTRY_META_NAMESPACE must be a reverse-DNS name in "
         "lower case such as 'com.contoso.registry', got 'Internal/Registry'"),
        ({"REGISTRY_META_NAMESPACE": "registry"}, "REGISTRY_META_NAMESPACE must be a reverse-DNS name in "
         "lower case such as 'com.contoso.registry', got 'registry'"),
    ],
)
def test_a_malformed_setting_is_named_with_what_was_expected(changes: dict[str, str], message: str) -> None:
    assert config_error(**changes) == message


def test_only_azure_client_id_set_explains_the_rename() -> None:
    message = config_error(ENTRA_API_CLIENT_ID=None, AZURE_CLIENT_ID=CLIENT_ID)
    assert message == (
        "ENTRA_API_CLIENT_ID is required but not set. AZURE_CLIENT_ID is set: the API's client id moved to "
        "ENTRA_API_CLIENT_ID, because azure-identity reads AZURE_CLIENT_ID to choose a managed identity"
    )


def test_azure_client_id_beside_entra_api_client_id_is_left_to_azure_identity() -> None:
    managed_identity = "0e7a1d43-5a53-4c47-b1a3-7b1c2b3d4e5f"
    assert settings_with(AZURE_CLIENT_ID=managed_identity).entra.api_client_id == CLIENT_ID


def test_audiences_default_to_the_client_id_and_its_api_uri() -> None:
    assert settings_with().entra.audiences == (CLIENT_ID, f"api://{CLIENT_ID}")


def test_audiences_can_be_listed_explicitly() -> None:
    audiences = settings_with(ENTRA_AUDIENCES=" api://registry , https://registry.contoso.com ,").entra.audiences
    assert audiences == ("api://registry", "https://registry.contoso.com")


def test_values_are_normalised() -> None:
    settings = settings_with(
        ENTRA_TENANT_ID=TENANT_ID.upper(),
        ENTRA_AUTHORITY="http://127.0.0.1:7072/",
        DB_AUTH="Entra",
        DB_PGBOUNCER="yes",
        LOG_LEVEL="debug",
        CORS_ORIGINS="http://localhost:5173, https://registry.contoso.com",
        ENTRA_REQUIRED_SCOPE="access_as_user",
    )
    assert settings.entra.tenant_id == TENANT_ID
    assert settings.entra.authority == "http://127.0.0.1:7072"
    assert settings.database.auth == "entra"
    assert settings.database.statement_cache_size == 0
    assert settings.log_level == "DEBUG"
    assert settings.cors_origins == ("http://localhost:5173", "https://registry.contoso.com")
    assert settings.entra.required_scope == "access_as_user"


def test_the_database_settings_alone_need_only_database_url() -> None:
    settings = DatabaseSettings.from_env({"DATABASE_URL": "postgres://127.0.0.1/registry"})
    assert (settings.url, settings.pool_max_size) == ("postgres://127.0.0.1/registry", 10)


def test_settings_are_read_once_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    reset_settings()
    try:
        first = get_settings()
        monkeypatch.setenv("LOG_LEVEL", "ERROR")
        assert get_settings() is first
        assert first.log_level == "WARNING"
        reset_settings()
        assert get_settings().log_level == "ERROR"
    finally:
        reset_settings()


def test_endpoint_settings_admit_http_and_listed_networks() -> None:
    settings = settings_with(ALLOW_HTTP_ENDPOINTS="true", ALLOWED_ENDPOINT_NETWORKS=" 10.20.0.0/16 , fd00:1::/64 ,")
    assert settings.endpoints == EndpointSettings(
        allow_http=True,
        allowed_networks=(ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00:1::/64")),
    )


def test_endpoint_settings_are_read_on_first_use_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALLOWED_ENDPOINT_NETWORKS", "192.168.7.0/24")
    reset_settings()
    try:
        assert get_endpoint_settings().allowed_networks == (ipaddress.ip_network("192.168.7.0/24"),)
        monkeypatch.setenv("ALLOWED_ENDPOINT_NETWORKS", "not-a-network")
        assert get_endpoint_settings().allowed_networks == (ipaddress.ip_network("192.168.7.0/24"),)
        reset_settings()
        with pytest.raises(ConfigError, match=r"^ALLOWED_ENDPOINT_NETWORKS must list CIDRs"):
            get_endpoint_settings()
    finally:
        reset_settings()


def test_drift_policy_is_flag_unless_withdraw() -> None:
    assert ProbeSettings.from_env({}).drift_policy == "flag"
    assert ProbeSettings.from_env({"DRIFT_POLICY": "Withdraw"}).drift_policy == "withdraw"
    with pytest.raises(ConfigError) as caught:
        ProbeSettings.from_env({"DRIFT_POLICY": "ignore"})
    assert str(caught.value) == "DRIFT_POLICY must be one of flag, withdraw, got 'ignore'"


def test_probing_is_off_unless_probe_enabled_is_true() -> None:
    # Off locally by default; the Bicep deploys PROBE_ENABLED=true with a schedule.
    assert ProbeSettings.from_env({}).enabled is False
    assert ProbeSettings.from_env({"PROBE_SCHEDULE": "0 */15 * * * *"}).enabled is False
    on = ProbeSettings.from_env({"PROBE_ENABLED": "true", "PROBE_SCHEDULE": "0 */15 * * * *"})
    assert (on.enabled, on.schedule) == (True, "0 */15 * * * *")
    with pytest.raises(ConfigError) as caught:
        ProbeSettings.from_env({"PROBE_ENABLED": "true"})
    assert str(caught.value).startswith("PROBE_SCHEDULE is required while PROBE_ENABLED is true")


@pytest.mark.parametrize("schedule", ["0 */15 * * * *", "*/15 * * * *", "0 0 3 * * Mon"])
def test_probe_schedule_takes_five_or_six_fields_as_the_host_does(schedule: str) -> None:
    assert ProbeSettings.from_env({"PROBE_ENABLED": "true", "PROBE_SCHEDULE": schedule}).schedule == schedule


@pytest.mark.parametrize("schedule", ["* * * *", "0 0 */15 * * * *"])
def test_probe_schedule_of_another_length_is_refused(schedule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ProbeSettings.from_env({"PROBE_SCHEDULE": schedule})
    assert str(caught.value).startswith("PROBE_SCHEDULE must be an NCRONTAB expression of five or six fields")


def test_the_meta_namespace_is_read() -> None:
    assert settings_with(REGISTRY_META_NAMESPACE="com.contoso.registry").meta_namespace == "com.contoso.registry"


def test_the_probe_settings_are_a_group_of_the_one_settings_object(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PROBE_BATCH_SIZE", "7")
    monkeypatch.setenv("ALLOW_HTTP_ENDPOINTS", "true")
    reset_settings()
    try:
        assert get_probe_settings() is get_settings().probes
        assert get_probe_settings().batch_size == 7
        # One reading of the endpoint rules, shared by the API and the probes.
        assert get_settings().probes.endpoints is get_settings().endpoints
    finally:
        reset_settings()


def readme_settings() -> set[str]:
    """The names in the first column of README's settings table (`A` / `B` rows name several)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| setting | default | meaning |"):]
    rows = re.findall(r"^\|([^|]*)\|", table[: table.index("\n\n")], flags=re.MULTILINE)
    return {name for row in rows[2:] for name in re.findall(r"`([A-Za-z_]+)`", row)}


def local_example() -> dict[str, str]:
    values: dict[str, str] = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    return values


def test_readme_documents_every_setting_and_no_other() -> None:
    read = settings_the_app_reads()
    assert {"DATABASE_URL", "PROBE_HISTORY", "GRAPH_BASE_URL"} <= read
    documented = readme_settings()
    assert sorted(read - documented) == []
    assert sorted(documented - read - PLATFORM_SETTINGS) == []


def test_the_local_example_has_every_setting_unless_said_why_not_and_loads() -> None:
    read = settings_the_app_reads()
    assert set(NOT_IN_LOCAL_EXAMPLE) <= read | PLATFORM_SETTINGS
    example = local_example()
    assert sorted(read - set(NOT_IN_LOCAL_EXAMPLE) - set(example)) == []
    assert sorted(set(example) - read - LOCAL_HOST_SETTINGS) == []
    assert not set(NOT_IN_LOCAL_EXAMPLE) & set(example)
    # Its values are valid as they stand: a newcomer's copy starts.
    settings = Settings.from_env({name: value for name, value in example.items() if name not in LOCAL_HOST_SETTINGS})
    assert settings == Settings.from_env(REQUIRED | {
        name: example[name] for name in ("DATABASE_URL", "ENTRA_AUTHORITY", "ENTRA_REQUIRED_SCOPE", "CORS_ORIGINS",
                                         "PROBE_SCHEDULE")})
