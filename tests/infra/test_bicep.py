"""Static checks of the Bicep in infra/: every file parses, and the security and connection-budget
invariants that infra/README.md promises hold, without an Azure subscription.

pycep turns Bicep into JSON: a reference to a parameter or variable and a string literal both
come out as plain strings, so the evaluator below treats a string as a reference only when it
names a parameter or variable of the template.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from pycep import BicepParser

from tests.settings_names import LOCAL_ONLY, PLATFORM_SETTINGS, REQUIRED, load_settings, settings_the_app_reads

INFRA = Path(__file__).resolve().parents[2] / "infra"
BICEP_FILES = sorted(path.relative_to(INFRA).as_posix() for path in INFRA.rglob("*.bicep"))
POSTGRES_API_VERSION = "2025-08-01"

# Settings the Bicep deploys with a value other than the app's default, and why.
DEPLOYED_DIFFERENTLY = {
    "DATABASE_URL": "required: the server the template creates, as the app's identity",
    "DB_AUTH": "Azure signs in with the managed identity's Entra token",
    "DB_POOL_MAX_SIZE": "derived from httpPerInstanceConcurrency and the connection budget",
    "ENTRA_TENANT_ID": "required: the tenant of the deployment",
    "ENTRA_API_CLIENT_ID": "required: the API's app registration",
    "ENTRA_REQUIRED_SCOPE": "the scope infra/README.md step 2.1 creates, access_as_user",
    "AZURE_CLIENT_ID": "the user-assigned identity, for azure-identity",
    "REVIEW_REQUIRE_MATCH": "API.md: the Bicep deploys REVIEW_REQUIRE_MATCH=true",
    "PROBE_ENABLED": "API.md, Attestation: on in Azure, off locally",
    "PROBE_SCHEDULE": "a valid schedule is always deployed (azure-functions-host #10346)",
}

# Maximum user connections from the Azure documentation ("Limits in Azure Database for
# PostgreSQL flexible server", max_connections less 15), written out independently of
# main.bicep's own table, by vCores: Burstable, General Purpose (4 GiB a vCore) and Memory
# Optimized (8 GiB a vCore) sizes.
USER_CONNECTIONS = (
    {"Standard_B1ms": 35, "Standard_B2s": 414, "Standard_B2ms": 844, "Standard_B4ms": 1703, "Standard_B8ms": 3422}
    | {f"Standard_B{cores}ms": 4985 for cores in (12, 16, 20)}
    | {"Standard_D2ds_v5": 844, "Standard_D4ds_v5": 1703, "Standard_D8ds_v5": 3422}
    | {f"Standard_D{cores}ds_v5": 4985 for cores in (16, 32, 48, 64, 96)}
    | {"Standard_E2ds_v5": 1703, "Standard_E4ds_v5": 3422}
    | {f"Standard_E{cores}ds_v5": 4985 for cores in (8, 16, 20, 32, 48, 64, 96)}
)
TIERS = {"B": "Burstable", "D": "GeneralPurpose", "E": "MemoryOptimized"}
GENERAL_PURPOSE = {"postgresSkuName": "Standard_D2ds_v5"}
# Flex Consumption's lowest maximumInstanceCount (Microsoft Learn, "Azure Functions Flex
# Consumption plan hosting", considerations: "The lowest maximum scale is currently 1").
FLEX_MINIMUM_INSTANCES = 1
# The probe timer's scale group: a timer runs on one instance at a time.
TIMER_INSTANCES = 1
# What main.bicep keeps free for a migration run, the grant script and an operator.
RESERVED = 10

# The special firewall range that admits connections from inside Azure, never a bind address.
AZURE_SERVICES = "0.0.0.0"  # noqa: S104


@functools.cache
def template(relative: str) -> dict[str, Any]:
    return cast(dict[str, Any], BicepParser().parse(text=(INFRA / relative).read_text(encoding="utf-8")))


def resources(relative: str, resource_type: str) -> dict[str, dict[str, Any]]:
    """Resources of one type in a file, keyed by symbolic name, with `if (...)` unwrapped."""
    found = {}
    for name, resource in template(relative).get("resources", {}).items():
        if resource["type"] == resource_type:
            found[name] = unwrap(resource["config"])
    return found


def only(relative: str, resource_type: str) -> dict[str, Any]:
    (resource,) = resources(relative, resource_type).values()
    return resource


def unwrap(config: dict[str, Any]) -> dict[str, Any]:
    inner: dict[str, Any] = config["config"] if "condition" in config and "config" in config else config
    return inner


def condition(relative: str, symbol: str) -> Any:
    return template(relative)["resources"][symbol]["config"].get("condition")


def decorators(parameter: dict[str, Any]) -> dict[str, Any]:
    return {decorator["type"]: decorator.get("argument") for decorator in parameter["decorators"]}


def default(relative: str, parameter: str) -> Any:
    return template(relative)["parameters"][parameter].get("default")


class Evaluator:
    """Evaluates the handful of Bicep expressions main.bicep uses for the connection budget."""

    def __init__(self, relative: str, parameters: Mapping[str, Any]) -> None:
        self._template = {"variables": {}} | template(relative)
        self._parameters = dict(parameters)

    def name(self, name: str) -> Any:
        if name in self._parameters:
            return self._parameters[name]
        if name in self._template["parameters"]:
            return self.eval(self._template["parameters"][name]["default"])
        return self.eval(self._template["variables"][name]["value"])

    def output(self, name: str) -> Any:
        return self.eval(self._template["outputs"][name]["value"])

    def eval(self, node: Any) -> Any:
        if isinstance(node, str):
            if node in self._template["parameters"] or node in self._template["variables"]:
                return self.name(node)
            # Interpolations here name a parameter or variable, nothing more complex.
            return re.sub(r"\$\{(\w+)\}", lambda match: str(self.name(match.group(1))), node)
        if isinstance(node, list):
            return [self.eval(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "operator" in node:
            return self._operator(node["operator"]["type"], node["operator"]["operands"])
        if "function" in node:
            arguments = [self.eval(value) for value in node["function"].get("parameters", {}).values()]
            return self._function(node["function"]["type"], arguments)
        return {key: self.eval(value) for key, value in node.items()}

    def _operator(self, kind: str, operands: dict[str, Any]) -> Any:
        if kind == "conditional":
            branch = "true_value" if self.eval(operands["condition"]) else "false_value"
            return self.eval(operands[branch])
        if kind == "not":
            return not self.eval(operands["bool_value"])
        if kind == "property_accessor":
            return f"{operands['operand_1']}.{self._path(operands['operand_2'])}"
        left, right = self.eval(operands["operand_1"]), self.eval(operands["operand_2"])
        match kind:
            case "and":
                return left and right
            case "or":
                return left or right
            case "equals":
                return left == right
            case "not_equals":
                return left != right
            case "greater_than":
                return left > right
            case "substract":  # pycep's spelling
                return left - right
            case "add":
                return left + right
            case "multiply":
                return left * right

            case "divide":
                return left // right  # integer division, as ARM does for ints
            case "index_accessor":
                return left[right]
        raise NotImplementedError(f"operator {kind}")

    def _path(self, node: Any) -> str:
        if isinstance(node, dict) and "operator" in node:
            operands = node["operator"]["operands"]
            return f"{operands['operand_1']}.{self._path(operands['operand_2'])}"
        return str(node)

    @staticmethod
    def _function(kind: str, arguments: list[Any]) -> Any:
        match kind:
            case "min":
                return min(arguments)
            case "max":
                return max(arguments)
            case "contains":
                return arguments[1] in arguments[0]
            case "starts_with":
                return str(arguments[0]).startswith(str(arguments[1]))
            case "trim":
                return str(arguments[0]).strip()
            case "join":
                return str(arguments[1]).join(arguments[0])
            case "empty":
                return not arguments[0]
            case "string":
                return str(arguments[0]).lower() if isinstance(arguments[0], bool) else str(arguments[0])
        raise NotImplementedError(f"function {kind}")


def budget(**parameters: Any) -> Evaluator:
    return Evaluator("main.bicep", parameters)


# --- every file ---------------------------------------------------------------------------------


def test_infra_has_main_and_modules() -> None:
    assert BICEP_FILES == [
        "main.bicep",
        "modules/functionapp.bicep",
        "modules/identity.bicep",
        "modules/monitoring.bicep",
        "modules/network.bicep",
        "modules/postgres.bicep",
        "modules/privateendpoint.bicep",
        "modules/rbac.bicep",
        "modules/storage.bicep",
    ]


@pytest.mark.parametrize("relative", BICEP_FILES)
def test_every_parameter_has_a_description(relative: str) -> None:
    parameters = template(relative)["parameters"]
    assert parameters, f"{relative} declares no parameter"
    undescribed = [name for name, parameter in parameters.items() if not decorators(parameter).get("description")]
    assert undescribed == []


@pytest.mark.parametrize("relative", BICEP_FILES)
def test_no_firewall_rule_opens_the_whole_internet(relative: str) -> None:
    assert "255.255.255.255" not in (INFRA / relative).read_text(encoding="utf-8")
    for rule in resources(relative, "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules").values():
        assert rule["properties"]["endIpAddress"] != "255.255.255.255"


def test_main_passes_every_module_exactly_its_parameters() -> None:
    for symbol, module in template("main.bicep")["modules"].items():
        declared = template(module["detail"]["path"])["parameters"]
        required = {name for name, parameter in declared.items() if "default" not in parameter}
        passed = set(unwrap(module["config"])["params"])
        assert passed <= set(declared), f"module {symbol} is passed unknown parameters {passed - set(declared)}"
        assert required <= passed, f"module {symbol} misses required parameters {required - passed}"


def test_main_reads_only_outputs_the_modules_declare() -> None:
    modules = template("main.bicep")["modules"]
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")
    references = set(re.findall(r"\b(\w+)\.outputs\.(\w+)", text))
    assert references, "main.bicep reads no module output"
    for symbol, output in references:
        declared = template(modules[symbol]["detail"]["path"])["outputs"]
        assert output in declared, f"{symbol}.outputs.{output} is not declared"


def test_names_come_from_a_resource_token_of_unique_string() -> None:
    token = template("main.bicep")["variables"]["resourceToken"]["value"]
    assert token["function"]["type"] == "to_lower"
    assert token["function"]["parameters"]["string_to_change"]["function"]["type"] == "unique_string"


@pytest.mark.parametrize("relative", BICEP_FILES)
def test_role_assignments_are_named_by_scope_principal_and_role(relative: str) -> None:
    for assignment in resources(relative, "Microsoft.Authorization/roleAssignments").values():
        name = assignment["name"]["function"]
        role = assignment["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        scope = assignment["scope"]
        scope_id = {"operator": {"type": "property_accessor", "operands": {"operand_1": scope, "operand_2": "id"}}}
        assert name == {
            "type": "guid",
            "parameters": {"base_string": scope_id, "extra_string_1": "principalId", "extra_string_2": role},
        }
        assert assignment["properties"]["principalId"] == "principalId"
        assert assignment["properties"]["principalType"] == "ServicePrincipal"


# --- Function App -------------------------------------------------------------------------------


def test_function_app_runs_on_flex_consumption_fc1() -> None:
    plan = only("modules/functionapp.bicep", "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True


def test_function_app_runs_python_311_as_the_user_assigned_identity() -> None:
    site = only("modules/functionapp.bicep", "Microsoft.Web/sites")
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"]["maximumInstanceCount"] == "maximumInstanceCount"
    assert site["identity"]["type"] == "UserAssigned"
    assert config["deployment"]["storage"]["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


def test_function_app_is_https_only_with_tls_12_and_ftp_off() -> None:
    site = only("modules/functionapp.bicep", "Microsoft.Web/sites")
    assert site["properties"]["httpsOnly"] is True
    site_config = site["properties"]["siteConfig"]
    assert site_config["minTlsVersion"] == "1.2"
    assert site_config["scmMinTlsVersion"] == "1.2"
    assert site_config["ftpsState"] == "Disabled"
    policies = resources("modules/functionapp.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {policy["name"]: policy["properties"]["allow"] for policy in policies.values()} == {
        "ftp": False,
        "scm": "scmBasicAuthEnabled",
    }
    assert default("main.bicep", "scmBasicAuthEnabled") is False


def test_no_platform_cors_on_flex_consumption() -> None:
    # The app answers CORS itself (infra/README.md, "CORS"); Flex listed platform CORS as unsupported.
    site = only("modules/functionapp.bicep", "Microsoft.Web/sites")
    assert "cors" not in site["properties"]["siteConfig"]
    assert "corsOrigins" not in template("modules/functionapp.bicep")["parameters"]
    assert default("main.bicep", "corsOrigins") == []
    web = template("main.bicep")["variables"]["webSettings"]["value"]
    assert budget().eval(web["CORS_ORIGINS"]) == ""
    assert budget(corsOrigins=["https://a.example", "https://b.example"]).eval(web["CORS_ORIGINS"]) == (
        "https://a.example,https://b.example")


def deployed_settings(**parameters: Any) -> dict[str, Any]:
    variables = template("main.bicep")["variables"]
    union = variables["appSettings"]["value"]["function"]
    assert union["type"] == "union"
    evaluator = budget(identityName="id-registry-x", entraAuthority="https://login.microsoftonline.com",
                       entraTenantId=REQUIRED["ENTRA_TENANT_ID"], entraApiClientId=REQUIRED["ENTRA_API_CLIENT_ID"],
                       **parameters)
    settings: dict[str, Any] = {}
    for group in union["parameters"].values():
        for name, value in variables[group]["value"].items():
            assert name not in settings, f"{name} is set twice"
            settings[name] = evaluator.eval(value)
    return settings


def test_app_settings_are_one_union_of_every_setting_the_app_reads() -> None:
    read = settings_the_app_reads()
    assert {"DATABASE_URL", "REVIEW_REQUIRE_MATCH", "PROBE_ENABLED", "DB_ACQUIRE_TIMEOUT"} <= read
    assert set(LOCAL_ONLY) <= read
    assert set(deployed_settings()) == (read - set(LOCAL_ONLY)) | PLATFORM_SETTINGS
    assert template("main.bicep")["modules"]["functionApp"]["config"]["params"]["appSettings"] == "appSettings"
    settings = only("modules/functionapp.bicep", "Microsoft.Web/sites/config")
    assert (settings["name"], settings["properties"]) == ("appsettings", "appSettings")


def test_every_deployed_setting_keeps_the_apps_default_unless_said_otherwise() -> None:
    deployed = deployed_settings()
    defaults = load_settings(REQUIRED)
    for name in sorted(settings_the_app_reads() - set(DEPLOYED_DIFFERENTLY) - set(LOCAL_ONLY)):
        assert load_settings(REQUIRED | {name: str(deployed[name])}) == defaults, name
    # The documented differences hold, and the deployed set loads as a whole.
    assert (deployed["REVIEW_REQUIRE_MATCH"], deployed["PROBE_ENABLED"]) == ("true", "true")
    settings = load_settings({name: str(value) for name, value in deployed.items()})
    probes = settings.probes
    assert settings.review.require_match is True
    assert (probes.enabled, probes.schedule) == (True, "0 */15 * * * *")
    assert settings.database.pool_max_size == budget().name("dbPoolMaxSize")


def test_probing_is_switched_by_its_own_parameter_and_the_schedule_is_never_empty() -> None:
    parameters = template("main.bicep")["parameters"]
    assert default("main.bicep", "probeEnabled") is True
    assert decorators(parameters["probeSchedule"])["min_length"] >= len("* * * * *")
    off = deployed_settings(probeEnabled=False)
    assert (off["PROBE_ENABLED"], off["PROBE_SCHEDULE"]) == ("false", "0 */15 * * * *")


def test_app_settings_sign_in_by_identity_without_secrets() -> None:
    variables = template("main.bicep")["variables"]
    host, database = variables["hostSettings"]["value"], variables["databaseSettings"]["value"]
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert database["DB_AUTH"] == "entra"
    assert database["DATABASE_URL"] == (
        "postgresql://${identityName}@${postgres.outputs.fqdn}:${databasePort}/${databaseName}?sslmode=require"
    )
    assert variables["databaseName"]["value"] == "registry"
    telemetry = variables["telemetrySettings"]["value"]
    assert telemetry["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identity.outputs.clientId};Authorization=AAD"
    )


# --- storage and monitoring ---------------------------------------------------------------------


def test_storage_takes_no_shared_keys_and_no_anonymous_reads() -> None:
    properties = only("modules/storage.bicep", "Microsoft.Storage/storageAccounts")["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True


@pytest.mark.parametrize("private", [False, True], ids=["public", "vnet"])
def test_storage_public_access_is_off_with_the_private_network(private: bool) -> None:
    properties = only("modules/storage.bicep", "Microsoft.Storage/storageAccounts")["properties"]
    storage = Evaluator("modules/storage.bicep", {"privateNetwork": private})
    assert storage.eval(properties["publicNetworkAccess"]) == ("Disabled" if private else "Enabled")
    closed, open_ = {"defaultAction": "Deny", "bypass": "None"}, {"defaultAction": "Allow", "bypass": "AzureServices"}
    assert storage.eval(properties["networkAcls"]) == (closed if private else open_)
    assert template("main.bicep")["modules"]["storage"]["config"]["params"]["privateNetwork"] == "vnetEnabled"


def test_application_insights_accepts_only_entra_ingestion() -> None:
    properties = only("modules/monitoring.bicep", "Microsoft.Insights/components")["properties"]
    assert properties["DisableLocalAuth"] is True
    roles = {
        assignment["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        for assignment in resources("modules/rbac.bicep", "Microsoft.Authorization/roleAssignments").values()
    }
    assert roles == {"storageBlobDataOwner", "monitoringMetricsPublisher"}
    role_ids = {name: variable["value"] for name, variable in template("modules/rbac.bicep")["variables"].items()}
    assert role_ids["monitoringMetricsPublisher"] == "3913510d-42f4-4e42-8a64-420c390055eb"
    assert role_ids["storageBlobDataOwner"] == "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"


# --- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_resources_use_the_ga_api_version() -> None:
    versions = {
        resource["api_version"]
        for resource in template("modules/postgres.bicep")["resources"].values()
        if resource["type"].startswith("Microsoft.DBforPostgreSQL/")
    }
    assert versions == {POSTGRES_API_VERSION}


def test_postgres_defaults_are_version_17_on_burstable_b2s() -> None:
    parameters = template("main.bicep")["parameters"]
    assert decorators(parameters["postgresVersion"])["allowed"] == ["16", "17"]
    assert default("main.bicep", "postgresVersion") == "17"
    assert default("main.bicep", "postgresSkuName") == "Standard_B2s"
    assert budget().name("postgresSkuTier") == "Burstable"
    server = only("modules/postgres.bicep", "Microsoft.DBforPostgreSQL/flexibleServers")
    assert server["sku"] == {"name": "skuName", "tier": "skuTier"}


def test_every_allowed_size_has_its_documented_user_connections_and_its_tier() -> None:
    allowed = decorators(template("main.bicep")["parameters"]["postgresSkuName"])["allowed"]
    # B1ms (35 user connections) is allowed since Flex takes a maximum as low as 1.
    assert "Standard_B1ms" in allowed
    assert sorted(allowed) == sorted(USER_CONNECTIONS)
    for sku in allowed:
        evaluator = budget(postgresSkuName=sku)
        assert evaluator.name("serverUserConnections") == USER_CONNECTIONS[sku], sku
        assert evaluator.name("postgresSkuTier") == TIERS[sku.removeprefix("Standard_")[0]], sku


def test_postgres_signs_in_with_entra_and_password_auth_is_off_by_default() -> None:
    server = only("modules/postgres.bicep", "Microsoft.DBforPostgreSQL/flexibleServers")
    auth = server["properties"]["authConfig"]
    assert auth["activeDirectoryAuth"] == "Enabled"
    assert auth["passwordAuth"]["operator"] == {
        "type": "conditional",
        "operands": {"condition": "passwordAuthEnabled", "true_value": "Enabled", "false_value": "Disabled"},
    }
    assert default("main.bicep", "passwordAuthEnabled") is False
    params = template("main.bicep")["modules"]["postgres"]["config"]["params"]
    assert params["passwordAuthEnabled"] == "passwordAuthEnabled"
    assert decorators(template("main.bicep")["parameters"]["administratorLoginPassword"]).keys() >= {"secure"}


def test_an_entra_administrator_is_set_from_parameters() -> None:
    admin = only("modules/postgres.bicep", "Microsoft.DBforPostgreSQL/flexibleServers/administrators")
    assert admin["name"] == "entraAdminObjectId"
    assert admin["properties"]["principalName"] == "entraAdminPrincipalName"
    assert admin["properties"]["principalType"] == "entraAdminPrincipalType"


def test_postgres_enforces_tls_12_and_allows_the_extensions_the_migrations_use() -> None:
    configurations = resources("modules/postgres.bicep", "Microsoft.DBforPostgreSQL/flexibleServers/configurations")
    values = {configuration["name"]: configuration["properties"]["value"] for configuration in configurations.values()}
    assert values["require_secure_transport"] == "ON"
    assert values["ssl_min_protocol_version"] == "TLSv1.2"
    # pg_trgm only: every CREATE EXTENSION in the migrations, and nothing they do not use.
    migrations = "".join(path.read_text(encoding="utf-8").lower()
                         for path in (INFRA.parent / "sql" / "migrations").glob("*.sql"))
    created = set(re.findall(r"create extension (?:if not exists )?(\w+)", migrations))
    assert {name.upper() for name in created} == set(values["azure.extensions"].split(",")) == {"PG_TRGM"}


def test_registry_database_is_created() -> None:
    database = only("modules/postgres.bicep", "Microsoft.DBforPostgreSQL/flexibleServers/databases")
    assert database["name"] == "databaseName"
    assert template("main.bicep")["modules"]["postgres"]["config"]["params"]["databaseName"] == "databaseName"


def test_firewall_admits_azure_services_and_an_optional_client_ip_only() -> None:
    rules = resources("modules/postgres.bicep", "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules")
    ranges = {
        symbol: (rule["properties"]["startIpAddress"], rule["properties"]["endIpAddress"])
        for symbol, rule in rules.items()
    }
    assert ranges == {
        "allowAzureServices": (AZURE_SERVICES, AZURE_SERVICES),
        "allowClientIp": ("clientIpAddress", "clientIpAddress"),
    }
    client_ip_empty = {"function": {"type": "empty", "parameters": {"item_to_test": "clientIpAddress"}}}
    assert condition("modules/postgres.bicep", "allowClientIp") == {
        "operator": {"type": "not", "operands": {"bool_value": client_ip_empty}}
    }
    assert default("main.bicep", "clientIpAddress") == ""
    # With the private network the app comes through the private endpoint: no 0.0.0.0 rule.
    assert condition("modules/postgres.bicep", "allowAzureServices") == {
        "operator": {"type": "not", "operands": {"bool_value": "privateNetwork"}}
    }
    assert template("main.bicep")["modules"]["postgres"]["config"]["params"]["privateNetwork"] == "vnetEnabled"


def test_pgbouncer_settings_exist_only_when_pgbouncer_is_enabled() -> None:
    configurations = resources("modules/postgres.bicep", "Microsoft.DBforPostgreSQL/flexibleServers/configurations")
    pgbouncer = {symbol for symbol, config in configurations.items() if config["name"].startswith("pgbouncer.")}
    assert pgbouncer == {"pgBouncer", "pgBouncerPoolMode"}
    assert {symbol: condition("modules/postgres.bicep", symbol) for symbol in pgbouncer} == {
        "pgBouncer": "pgBouncerEnabled",
        "pgBouncerPoolMode": "pgBouncerEnabled",
    }
    assert configurations["pgBouncerPoolMode"]["properties"]["value"] == "TRANSACTION"


# --- connection budget --------------------------------------------------------------------------


def test_instance_limits_follow_the_current_flex_documentation() -> None:
    for relative in ("main.bicep", "modules/functionapp.bicep"):
        limits = decorators(template(relative)["parameters"]["maximumInstanceCount"])
        assert (limits["min_value"], limits["max_value"]) == (FLEX_MINIMUM_INSTANCES, 1000), relative
    assert default("main.bicep", "maximumInstanceCount") == 40
    # At least one connection for one HTTP instance and the timer's.
    assert decorators(template("main.bicep")["parameters"]["databaseConnectionBudget"])["min_value"] == 2


def test_http_concurrency_per_instance_is_set_and_bounds_the_pool() -> None:
    assert default("main.bicep", "httpPerInstanceConcurrency") == 4
    site = only("modules/functionapp.bicep", "Microsoft.Web/sites")
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["triggers"] == {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}}
    params = template("main.bicep")["modules"]["functionApp"]["config"]["params"]
    assert params["httpPerInstanceConcurrency"] == "httpPerInstanceConcurrency"
    assert params["httpAlwaysReadyInstanceCount"] == "effectiveAlwaysReady"
    always_ready = Evaluator("modules/functionapp.bicep", {"httpAlwaysReadyInstanceCount": 2})
    assert always_ready.eval(scale["alwaysReady"]) == [{"name": "http", "instanceCount": 2}]
    assert Evaluator("modules/functionapp.bicep", {"httpAlwaysReadyInstanceCount": 0}).eval(scale["alwaysReady"]) == []


def test_the_default_is_40_http_instances_and_the_timer_with_pools_of_4_on_b2s() -> None:
    evaluator = budget()
    assert (evaluator.name("effectiveMaximumInstanceCount"), evaluator.name("dbPoolMaxSize")) == (40, 4)
    assert evaluator.output("NOTES") == ""
    # (40 HTTP + 1 timer) x 4 = 164 of 414: the rest for migrations, an operator and a burst.
    assert evaluator.output("APP_CONNECTIONS") == (40 + TIMER_INSTANCES) * 4 == 164


@pytest.mark.parametrize(
    ("parameters", "instances", "pool_max"),
    [
        ({}, 40, 4),
        ({"maximumInstanceCount": 100}, 100, 3),
        ({"maximumInstanceCount": 1000}, 319, 1),
        ({"databaseConnectionBudget": 40}, 39, 1),
        ({"databaseConnectionBudget": 500}, 40, 4),
        ({"databaseConnectionBudget": 500, "httpPerInstanceConcurrency": 16}, 40, 9),
        ({"httpAlwaysReadyInstanceCount": 5}, 40, 4),
        ({"httpAlwaysReadyInstanceCount": 5, "httpPerInstanceConcurrency": 16}, 40, 6),
        ({"postgresSkuName": "Standard_B1ms"}, 24, 1),
        ({"maximumInstanceCount": 1, "httpPerInstanceConcurrency": 16}, 1, 16),
        (GENERAL_PURPOSE | {"databaseConnectionBudget": 800, "httpPerInstanceConcurrency": 16}, 40, 16),
        (GENERAL_PURPOSE | {"databaseConnectionBudget": 5000, "maximumInstanceCount": 1000}, 833, 1),
        ({"postgresSkuName": "Standard_E96ds_v5", "databaseConnectionBudget": 4000,
          "httpPerInstanceConcurrency": 1000}, 40, 97),
    ],
)
def test_pool_size_is_the_instance_share_of_the_budget_up_to_the_concurrency(
    parameters: dict[str, Any], instances: int, pool_max: int
) -> None:
    evaluator = budget(**parameters)
    assert evaluator.name("effectiveMaximumInstanceCount") == instances
    assert evaluator.name("dbPoolMaxSize") == pool_max
    assert evaluator.eval(template("main.bicep")["variables"]["databaseSettings"]["value"]["DB_POOL_MAX_SIZE"]) == str(
        pool_max
    )
    assert evaluator.output("MAXIMUM_INSTANCE_COUNT") == instances
    assert evaluator.output("DB_POOL_MAX_SIZE") == pool_max


@pytest.mark.parametrize("sku", sorted(USER_CONNECTIONS))
def test_every_scale_group_and_always_ready_instance_fits_the_budget(sku: str) -> None:
    for requested_budget in (2, 3, 40, 100, 320, 414, 844, 5000, 100_000):
        for maximum_instances in (1, 2, 40, 100, 999, 1000):
            for concurrency in (1, 4, 16, 1000):
                for always_ready in (0, 1, 20, 100):
                    evaluator = budget(postgresSkuName=sku, databaseConnectionBudget=requested_budget,
                                       maximumInstanceCount=maximum_instances, httpPerInstanceConcurrency=concurrency,
                                       httpAlwaysReadyInstanceCount=always_ready)
                    instances = evaluator.name("effectiveMaximumInstanceCount")
                    ready = evaluator.name("effectiveAlwaysReady")
                    pool_max = evaluator.name("dbPoolMaxSize")
                    case = f"{sku}, {requested_budget}, {maximum_instances}, {concurrency}, {always_ready}"
                    assert 1 <= instances <= maximum_instances, case
                    assert 0 <= ready <= always_ready, case
                    assert 1 <= pool_max <= min(concurrency, 100), case
                    assert pool_max >= evaluator.name("dbPoolMinSize"), case
                    # HTTP instances, the timer's instance and the always-ready ones, each with a full pool.
                    connections = (instances + TIMER_INSTANCES + ready) * pool_max
                    assert connections == evaluator.output("APP_CONNECTIONS"), case
                    assert connections <= min(requested_budget, USER_CONNECTIONS[sku] - RESERVED), case
                    assert USER_CONNECTIONS[sku] - connections >= RESERVED, case


@pytest.mark.parametrize(
    ("parameters", "note"),
    [
        ({}, ""),
        (
            {"databaseConnectionBudget": 500},
            "databaseConnectionBudget was lowered to 404, the user connections of Standard_B2s less 10 "
            "for migrations and operators.",
        ),
        (
            {"maximumInstanceCount": 400},
            "maximumInstanceCount was lowered to 319 so that every instance gets a connection.",
        ),
        (
            {"databaseConnectionBudget": 1000, "maximumInstanceCount": 1000},
            "databaseConnectionBudget was lowered to 404, the user connections of Standard_B2s less 10 "
            "for migrations and operators. "
            "maximumInstanceCount was lowered to 403 so that every instance gets a connection.",
        ),
        (
            {"databaseConnectionBudget": 40, "httpAlwaysReadyInstanceCount": 50},
            "httpAlwaysReadyInstanceCount was lowered to 38 so that every instance gets a connection. "
            "maximumInstanceCount was lowered to 1 so that every instance gets a connection.",
        ),
        (
            {"vnetEnabled": True, "allowedEndpointNetworks": ["10.40.2.0/24"]},
            "allowedEndpointNetworks names the private-endpoint subnet or the whole virtual network: probes could "
            "reach storage and PostgreSQL; list only the networks of MCP servers.",
        ),
        ({"vnetEnabled": False, "allowedEndpointNetworks": ["10.40.2.0/24"]}, ""),
    ],
)
def test_notes_report_what_the_budget_lowered(parameters: dict[str, Any], note: str) -> None:
    assert budget(**parameters).output("NOTES") == note


def test_function_app_scales_to_the_capped_instance_count() -> None:
    params = template("main.bicep")["modules"]["functionApp"]["config"]["params"]
    assert params["maximumInstanceCount"] == "effectiveMaximumInstanceCount"


@pytest.mark.parametrize(
    ("sku", "requested", "enabled", "port", "note"),
    [
        ("Standard_B2s", False, False, 5432, ""),
        ("Standard_B8ms", True, False, 5432,
         "enablePgBouncer was ignored: the Burstable tier has no built-in PgBouncer."),
        ("Standard_D2ds_v5", False, False, 5432, ""),
        ("Standard_D2ds_v5", True, True, 6432, ""),
        ("Standard_E4ds_v5", True, True, 6432, ""),
    ],
)
def test_pgbouncer_is_used_only_on_tiers_that_have_it(
    sku: str, requested: bool, enabled: bool, port: int, note: str
) -> None:
    evaluator = budget(postgresSkuName=sku, enablePgBouncer=requested)
    assert evaluator.name("pgBouncerEnabled") is enabled
    assert evaluator.name("databasePort") == port
    assert evaluator.eval(template("main.bicep")["variables"]["databaseSettings"]["value"]["DB_PGBOUNCER"]) == (
        "true" if enabled else "false"
    )
    assert evaluator.output("NOTES") == note
    assert template("main.bicep")["modules"]["postgres"]["config"]["params"]["pgBouncerEnabled"] == "pgBouncerEnabled"


# --- parameter files ----------------------------------------------------------------------------


def bicepparam() -> dict[str, str]:
    text = (INFRA / "main.bicepparam").read_text(encoding="utf-8")
    assert text.startswith("using './main.bicep'\n")
    return dict(re.findall(r"^param (\w+) = (.+)$", text, flags=re.MULTILINE))


def test_bicepparam_sets_known_parameters_and_every_required_one() -> None:
    declared = template("main.bicep")["parameters"]
    required = {name for name, parameter in declared.items() if "default" not in parameter}
    values = bicepparam()
    assert set(values) <= set(declared)
    assert required <= set(values)


def test_bicepparam_keeps_the_safe_defaults() -> None:
    values = bicepparam()
    assert values["passwordAuthEnabled"] == "false"
    assert values["enablePgBouncer"] == "false"
    assert values["postgresSkuName"] == "'Standard_B2s'"
    assert (int(values["maximumInstanceCount"]), int(values["databaseConnectionBudget"])) == (40, 320)
    assert values["corsOrigins"] == "[]"
    assert "255.255.255.255" not in (INFRA / "main.bicepparam").read_text(encoding="utf-8")


def test_main_bicepparam_is_the_only_parameter_file() -> None:
    # azd prefers main.bicepparam when both exist, so a second file would silently go unused.
    assert sorted(path.name for path in INFRA.glob("main.*")) == ["main.bicep", "main.bicepparam"]
    assert "main.parameters.json" not in (INFRA / "README.md").read_text(encoding="utf-8")


# --- the database role step ---------------------------------------------------------------------


@pytest.mark.parametrize("script", ["grant-db-access.sh", "migrate-azure.sh"])
def test_scripts_are_executable_bash(script: str) -> None:
    path = INFRA / "scripts" / script
    assert path.stat().st_mode & 0o111
    assert path.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")


def test_grant_script_creates_the_role_by_the_identitys_object_id() -> None:
    # tests/test_app_grants.py runs the script itself against a local server.
    text = (INFRA / "scripts" / "grant-db-access.sh").read_text(encoding="utf-8")
    assert "pgaadauth_create_principal_with_oid(%L, %L, %L, false, false)" in text
    assert "pgaadauth_create_principal(" not in text
    assert "--resource-type oss-rdbms" in text
    assert text.count("APP_IDENTITY_PRINCIPAL_ID") >= 2
    # identity.outputs.principalId, the object id of the user-assigned identity.
    assert template("main.bicep")["outputs"]["APP_IDENTITY_PRINCIPAL_ID"]["value"] == {"operator": {
        "type": "property_accessor", "operands": {"operand_1": "identity", "operand_2": {"operator": {
            "type": "property_accessor", "operands": {"operand_1": "outputs", "operand_2": "principalId"}}}}}}
    assert template("modules/identity.bicep")["outputs"]["principalId"]["value"] == {"operator": {
        "type": "property_accessor", "operands": {"operand_1": "identity", "operand_2": {"operator": {
            "type": "property_accessor", "operands": {"operand_1": "properties", "operand_2": "principalId"}}}}}}


def test_readme_walks_through_every_step() -> None:
    text = (INFRA / "README.md").read_text(encoding="utf-8")
    # From an empty subscription, in an order that works, waiting where Azure is eventually
    # consistent: provider registration, the new app registration, the firewall, the first request.
    in_order = [
        "az login",
        "az provider register",
        "registrationState",
        "az functionapp list-flexconsumption-locations",
        "geoBackupSupported",
        "az ad app create",
        "api://$API_APP_ID",
        "run that command again",
        "az group create",
        "az deployment group create",
        "--parameters infra/main.bicepparam",
        "PrincipalNotFound",
        "az account get-access-token --resource-type oss-rdbms",
        "python -m tools.migrate --wait 300",
        "no pg_hba.conf entry",
        "infra/scripts/grant-db-access.sh",
        "pgaadauth_create_principal_with_oid",
        "sql/app_grants.sql",
        "after\nevery migration run",
        "func azure functionapp publish",
        "/api/health",
        "for attempt in",
        "/api/v0.1/servers",
    ]
    walkthrough = text[text.index("## 1. Sign in") :]
    position = 0
    for step in in_order:
        position = walkthrough.find(step, position)
        assert position != -1, f"{step!r} is missing, or comes before the step it follows"
    for topic in ("access_as_user", "Registry.Admin", "GroupMember.Read.All", "## Connection budget", "DB_PGBOUNCER",
                  "The lowest maximum scale is currently 1", "concepts-limits", "#11790", "SQLSTATE 53300",
                  "(40 + 1) × 4 = 164 of 414", "perInstanceConcurrency", "## Private network", "## CORS"):
        assert topic in text
    assert "by construction" not in text
