// MCP Endpoint Registry: Function App (Flex Consumption, Python 3.11) on PostgreSQL Flexible
// Server, passwordless end to end. Deployed into an existing resource group:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
// infra/README.md walks through every step, including the database role and migrations.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement
// ---------------------------------------------------------------------------------------------

@description('Short name of this environment (dev, prod, ...); feeds the unique suffix of every resource name.')
@minLength(1)
@maxLength(32)
param environmentName string

@description('Azure region for every resource. Flex Consumption and the chosen PostgreSQL SKU must both be offered there.')
param location string = resourceGroup().location

// ---------------------------------------------------------------------------------------------
// Function App
// ---------------------------------------------------------------------------------------------

// Flex Consumption refuses a maximum below 40 in most regions (Microsoft Learn, "Azure Functions
// Flex Consumption plan hosting": "the lowest maximum scale is currently 40"; lower values were
// a preview in a few regions only).
@description('Most Flex Consumption instances the app may scale out to (40 to 1000). Each instance keeps its own database pool.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Browser origins the platform CORS allows (the Azure home of CORS_ORIGINS), e.g. https://registry.contoso.com. Empty for none.')
param corsOrigins array = []

@description('Allow basic-auth publishing credentials on the SCM site. Off: deployments authenticate with Entra tokens.')
param scmBasicAuthEnabled bool = false

@description('Log level of the app (LOG_LEVEL).')
@allowed([
  'CRITICAL'
  'ERROR'
  'WARNING'
  'INFO'
  'DEBUG'
])
param logLevel string = 'INFO'

@description('Who may read the MCP registry feed (REGISTRY_FEED_AUTH): anonymous, or entra for signed-in callers only.')
@allowed([
  'anonymous'
  'entra'
])
param registryFeedAuth string = 'anonymous'

@description('NCRONTAB schedule (seconds first) of the attestation probe round (PROBE_SCHEDULE); empty turns probing off.')
param probeSchedule string = '0 */15 * * * *'

@description('What a published server whose tools changed after approval gets (DRIFT_POLICY): flag marks it drifted; withdraw also deprecates it in the feed until another administrator accepts the change.')
@allowed([
  'flag'
  'withdraw'
])
param driftPolicy string = 'flag'

// ---------------------------------------------------------------------------------------------
// Microsoft Entra ID (the API's app registration; see infra/README.md)
// ---------------------------------------------------------------------------------------------

@description('Tenant that issues the access tokens the API accepts (ENTRA_TENANT_ID).')
param entraTenantId string = tenant().tenantId

@description('Application (client) id of the API\'s app registration (ENTRA_API_CLIENT_ID).')
@minLength(36)
@maxLength(36)
param entraApiClientId string

@description('App role that makes a caller an administrator (ENTRA_ADMIN_ROLE).')
param entraAdminRole string = 'Registry.Admin'

@description('Object id of an Entra group whose members are administrators too (ENTRA_ADMIN_GROUP_ID). Empty for none.')
param entraAdminGroupId string = ''

@description('Delegated scope every user token must carry (ENTRA_REQUIRED_SCOPE). Empty to accept any scope of this API.')
param entraRequiredScope string = 'access_as_user'

@description('Let guest (B2B) accounts use the API (ENTRA_ALLOW_GUESTS).')
param entraAllowGuests bool = false

// ---------------------------------------------------------------------------------------------
// PostgreSQL Flexible Server
// ---------------------------------------------------------------------------------------------

@description('PostgreSQL major version.')
@allowed([
  '16'
  '17'
])
param postgresVersion string = '17'

// Standard_B1ms is left out on purpose: its 35 user connections cannot give each of the 40
// instances Flex Consumption may run one connection. The tier follows from the name.
@description('PostgreSQL compute size: Burstable (Standard_B...), General Purpose (Standard_D...) or Memory Optimized (Standard_E...).')
@allowed([
  'Standard_B2s'
  'Standard_B2ms'
  'Standard_B4ms'
  'Standard_B8ms'
  'Standard_B12ms'
  'Standard_B16ms'
  'Standard_B20ms'
  'Standard_D2ds_v5'
  'Standard_D4ds_v5'
  'Standard_D8ds_v5'
  'Standard_D16ds_v5'
  'Standard_D32ds_v5'
  'Standard_D48ds_v5'
  'Standard_D64ds_v5'
  'Standard_D96ds_v5'
  'Standard_E2ds_v5'
  'Standard_E4ds_v5'
  'Standard_E8ds_v5'
  'Standard_E16ds_v5'
  'Standard_E20ds_v5'
  'Standard_E32ds_v5'
  'Standard_E48ds_v5'
  'Standard_E64ds_v5'
  'Standard_E96ds_v5'
])
param postgresSkuName string = 'Standard_B2s'

@description('PostgreSQL storage in GiB.')
@minValue(32)
param postgresStorageSizeGB int = 32

@description('Days of point-in-time backups kept.')
@minValue(7)
@maxValue(35)
param postgresBackupRetentionDays int = 7

@description('Keep backups in the paired region as well. Can only be chosen when the server is created, and only in regions that offer it (see infra/README.md); set false elsewhere.')
param postgresGeoRedundantBackup bool = true

@description('Turn on the built-in PgBouncer and connect through it on port 6432 (GeneralPurpose or MemoryOptimized only).')
param enablePgBouncer bool = false

@description('Connections the app may hold on the server, summed over all instances (at least one per instance). Held below the server\'s user connections less 10 for migrations and operators.')
@minValue(40)
param databaseConnectionBudget int = 320

@description('Allow PostgreSQL password sign-in besides Microsoft Entra. Off by default; the app never uses it.')
param passwordAuthEnabled bool = false

@description('Name of the password administrator; used only when passwordAuthEnabled is true.')
param administratorLogin string = 'registryadmin'

@description('Password of the password administrator; required only when passwordAuthEnabled is true.')
@secure()
param administratorLoginPassword string = ''

@description('Object id of the Microsoft Entra user or group made PostgreSQL administrator (runs migrations and the role script).')
param entraAdminObjectId string

@description('Name of that administrator: the user principal name of a user, or the display name of a group.')
param entraAdminPrincipalName string

@description('Kind of Microsoft Entra principal made PostgreSQL administrator.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param entraAdminPrincipalType string = 'User'

@description('Public IP address of the machine that runs migrations and the role script; empty for no such firewall rule.')
param clientIpAddress string = ''

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

@description('Days Log Analytics keeps logs and telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'mcp-endpoint-registry'
}
var identityName = 'id-registry-${resourceToken}'
var functionAppName = 'func-registry-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var databaseName = 'registry'

// ---------------------------------------------------------------------------------------------
// Connection budget (infra/README.md, "Connection budget")
// ---------------------------------------------------------------------------------------------

// Maximum user connections of each allowed size (Microsoft Learn, "Limits in Azure Database for
// PostgreSQL flexible server": max_connections less the 15 Azure keeps for replication and
// monitoring).
var userConnections = {
  Standard_B2s: 414
  Standard_B2ms: 844
  Standard_B4ms: 1703
  Standard_B8ms: 3422
  Standard_B12ms: 4985
  Standard_B16ms: 4985
  Standard_B20ms: 4985
  Standard_D2ds_v5: 844
  Standard_D4ds_v5: 1703
  Standard_D8ds_v5: 3422
  Standard_D16ds_v5: 4985
  Standard_D32ds_v5: 4985
  Standard_D48ds_v5: 4985
  Standard_D64ds_v5: 4985
  Standard_D96ds_v5: 4985
  Standard_E2ds_v5: 1703
  Standard_E4ds_v5: 3422
  Standard_E8ds_v5: 4985
  Standard_E16ds_v5: 4985
  Standard_E20ds_v5: 4985
  Standard_E32ds_v5: 4985
  Standard_E48ds_v5: 4985
  Standard_E64ds_v5: 4985
  Standard_E96ds_v5: 4985
}
var postgresSkuTier = startsWith(postgresSkuName, 'Standard_B') ? 'Burstable' : (startsWith(postgresSkuName, 'Standard_D') ? 'GeneralPurpose' : 'MemoryOptimized')
var serverUserConnections = userConnections[postgresSkuName]
// Kept free whatever the budget: a migration run, the grant script and an operator's psql.
var reservedConnections = 10
var connectionBudget = min(databaseConnectionBudget, serverUserConnections - reservedConnections)

// FUNCTIONS_WORKER_PROCESS_COUNT is left unset, so every Flex instance runs one Python worker
// with its own asyncpg pool, and the server can see instances x DB_POOL_MAX_SIZE connections.
// Each pool gets its instance's share of the budget, rounded down (and 100 is the most the app
// accepts). The smallest allowed server leaves 404 connections, so the budget always covers
// the 40 instances Flex requires; a larger maximum is lowered to the budget, so that every pool
// keeps one connection or more. This bounds the planned scale-out only: the host does not
// strictly hold HTTP bursts to maximumInstanceCount (azure-functions-host #11790), which is why
// the default leaves headroom and the app answers `too many clients` with 503 and Retry-After.
var effectiveMaximumInstanceCount = min(maximumInstanceCount, connectionBudget)
var dbPoolMaxSize = min(100, connectionBudget / effectiveMaximumInstanceCount)
var dbPoolMinSize = 1

// Burstable has no built-in PgBouncer: the request is ignored there, and said so in an output.
var pgBouncerEnabled = enablePgBouncer && (postgresSkuTier != 'Burstable')
var databasePort = pgBouncerEnabled ? 6432 : 5432

// What the deployment changed of the request, reported in the NOTES output.
var budgetNote = (databaseConnectionBudget > connectionBudget) ? 'databaseConnectionBudget was lowered to ${connectionBudget}, the user connections of ${postgresSkuName} less ${reservedConnections} for migrations and operators. ' : ''
var instancesNote = (maximumInstanceCount > effectiveMaximumInstanceCount) ? 'maximumInstanceCount was lowered to ${effectiveMaximumInstanceCount} so that every instance gets a connection. ' : ''
var pgBouncerNote = (enablePgBouncer && !pgBouncerEnabled) ? 'enablePgBouncer was ignored: the Burstable tier has no built-in PgBouncer.' : ''

// The login endpoint ends in a slash; the app appends paths to ENTRA_AUTHORITY itself.
var loginEndpoint = environment().authentication.loginEndpoint
var entraAuthority = endsWith(loginEndpoint, '/') ? substring(loginEndpoint, 0, length(loginEndpoint) - 1) : loginEndpoint

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-registry-${resourceToken}'
    applicationInsightsName: 'appi-registry-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'stregistry${take(resourceToken, 13)}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  params: {
    name: 'psql-registry-${resourceToken}'
    location: location
    tags: tags
    version: postgresVersion
    skuTier: postgresSkuTier
    skuName: postgresSkuName
    storageSizeGB: postgresStorageSizeGB
    backupRetentionDays: postgresBackupRetentionDays
    geoRedundantBackup: postgresGeoRedundantBackup
    passwordAuthEnabled: passwordAuthEnabled
    administratorLogin: administratorLogin
    administratorLoginPassword: administratorLoginPassword
    entraAdminObjectId: entraAdminObjectId
    entraAdminPrincipalName: entraAdminPrincipalName
    entraAdminPrincipalType: entraAdminPrincipalType
    databaseName: databaseName
    pgBouncerEnabled: pgBouncerEnabled
    clientIpAddress: clientIpAddress
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
  }
}

// Every setting the app reads (shared/config.py), plus the host's identity-based storage,
// grouped by concern and merged in one union below.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  // azure-identity picks the user-assigned identity by this client id.
  AZURE_CLIENT_ID: identity.outputs.clientId
}
var databaseSettings = {
  // No password: the app signs in as its managed identity with an Entra token (DB_AUTH=entra).
  DATABASE_URL: 'postgresql://${identityName}@${postgres.outputs.fqdn}:${databasePort}/${databaseName}?sslmode=require'
  DB_AUTH: 'entra'
  DB_POOL_MIN_SIZE: string(dbPoolMinSize)
  DB_POOL_MAX_SIZE: string(dbPoolMaxSize)
  DB_PGBOUNCER: pgBouncerEnabled ? 'true' : 'false'
}
var entraSettings = {
  ENTRA_TENANT_ID: entraTenantId
  ENTRA_API_CLIENT_ID: entraApiClientId
  ENTRA_AUTHORITY: entraAuthority
  ENTRA_ADMIN_GROUP_ID: entraAdminGroupId
  ENTRA_ADMIN_ROLE: entraAdminRole
  ENTRA_REQUIRED_SCOPE: entraRequiredScope
  ENTRA_ALLOW_GUESTS: entraAllowGuests ? 'true' : 'false'
}
var webSettings = {
  // Informational: the platform CORS (siteConfig.cors) answers browsers in Azure.
  CORS_ORIGINS: join(corsOrigins, ',')
  LOG_LEVEL: logLevel
  REGISTRY_FEED_AUTH: registryFeedAuth
  PROBE_SCHEDULE: probeSchedule
  DRIFT_POLICY: driftPolicy
}
var telemetrySettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  // Local auth is off on Application Insights: ingestion is by the identity's Entra token.
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  // The worker's OpenTelemetry distro exports the app's spans (database calls as dependencies
  // under the host's request). Logs take one path only, the host's forwarding of the worker's
  // log records, so the distro exports none (docs/telemetry.md says why this path).
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  OTEL_LOGS_EXPORTER: 'none'
}
var appSettings = union(hostSettings, databaseSettings, entraSettings, webSettings, telemetrySettings)

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionApp'
  params: {
    name: functionAppName
    planName: 'plan-registry-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    maximumInstanceCount: effectiveMaximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    corsOrigins: corsOrigins
    scmBasicAuthEnabled: scmBasicAuthEnabled
    appSettings: appSettings
  }
  // The host starts as soon as the app exists; without its storage role it would fail to start.
  dependsOn: [
    rbac
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (read by infra/scripts/grant-db-access.sh and by azd)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output APP_IDENTITY_NAME string = identity.outputs.name
output APP_IDENTITY_CLIENT_ID string = identity.outputs.clientId
// The object id the grant script creates the database role for (pgaadauth_create_principal_with_oid).
output APP_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output POSTGRES_SERVER_NAME string = postgres.outputs.name
output POSTGRES_SERVER_FQDN string = postgres.outputs.fqdn
output POSTGRES_DATABASE string = postgres.outputs.databaseName
output DATABASE_PORT int = databasePort
output MAXIMUM_INSTANCE_COUNT int = effectiveMaximumInstanceCount
output DB_POOL_MAX_SIZE int = dbPoolMaxSize
output PGBOUNCER_ENABLED bool = pgBouncerEnabled
output NOTES string = trim('${budgetNote}${instancesNote}${pgBouncerNote}')
