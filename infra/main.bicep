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

// Microsoft Learn, "Azure Functions Flex Consumption plan hosting", considerations: "The lowest
// maximum scale is currently 1. The highest currently supported value is 1000." (It read 40
// during the preview; infra/README.md, "Connection budget", says which source is current.) The
// maximum bounds each per-function scale group, not the app (Microsoft Learn, "Event-driven
// scaling in Azure Functions", per-function scaling).
@description('Most instances of each per-function scale group (the HTTP group; the timer has its own), 1 to 1000. Each instance keeps its own database pool.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

// Python apps on Flex take 1 HTTP request per instance by default (Microsoft Learn, "Concurrency
// in Azure Functions": "For Python apps, the default HTTP trigger concurrency for all instance
// sizes is 1"). The app is asyncio throughout, so one worker serves more at once; 4 is what the
// bench measured as the knee (bench/README.md, "Concurrency per worker"): 1.3-1.7x the throughput
// of 1 with a p99 still under 30 ms, where 16 adds little throughput and triples the p99.
@description('Concurrent HTTP requests one instance takes (scaleAndConcurrency.triggers.http.perInstanceConcurrency). Also the most database connections one instance needs: DB_POOL_MAX_SIZE follows from it.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 4

@description('Always-ready instances of the HTTP scale group (0 for none). They come on top of maximumInstanceCount and hold a pool each, so they count in the connection budget.')
@minValue(0)
@maxValue(100)
param httpAlwaysReadyInstanceCount int = 0

@description('Memory of each Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Browser origins the app answers CORS for on the API (CORS_ORIGINS), e.g. https://registry.contoso.com. Empty for none. The feed answers any origin regardless. No platform CORS is configured on Flex Consumption (infra/README.md, "CORS").')
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

@description('Probe registered endpoints (PROBE_ENABLED): the timer\'s rounds and POST .../probe. Off: nothing is probed and POST .../probe answers 409.')
param probeEnabled bool = true

// Always a valid schedule, probing on or off: an empty one fails the timer's indexing and disables
// the function on every start (azure-functions-host #10346). Five fields or six, as the host takes.
@description('NCRONTAB schedule of the attestation probe round (PROBE_SCHEDULE): six fields, seconds first, or five. Never empty; turn probing off with probeEnabled.')
@minLength(9)
param probeSchedule string = '0 */15 * * * *'

@description('Registrations one instance claims at a time in a probe round (PROBE_BATCH_SIZE).')
@minValue(1)
@maxValue(10000)
param probeBatchSize int = 100

@description('PROBE_HISTORY of shared/config.py (probe history kept per registration); the app\'s default is 50.')
@minValue(1)
@maxValue(10000)
param probeHistory int = 50

@description('Probes one instance runs at once (PROBE_CONCURRENCY).')
@minValue(1)
@maxValue(256)
param probeConcurrency int = 16

@description('Reverse-DNS namespace of the feed\'s _meta attestation entry (REGISTRY_META_NAMESPACE).')
param registryMetaNamespace string = 'internal.mcp-registry'

@description('Seconds the feed answers from its in-memory snapshot before checking it is current (FEED_SNAPSHOT_MAX_AGE).')
@minValue(0)
@maxValue(3600)
param feedSnapshotMaxAge int = 30

@description('Seconds unknown-name lookups of the feed are counted in memory before one statement writes them (DEMAND_FLUSH_SECONDS).')
@minValue(1)
@maxValue(3600)
param demandFlushSeconds int = 60

// ---------------------------------------------------------------------------------------------
// Submission and review rules (API.md)
// ---------------------------------------------------------------------------------------------

// API.md, *Revisions*: the Bicep deploys REVIEW_REQUIRE_MATCH=true (the app's own default is false).
@description('A decision must name the revision it was made on, If-Match or a body revision, else 428 (REVIEW_REQUIRE_MATCH).')
param reviewRequireMatch bool = true

@description('Administrators may decide their own revisions (REVIEW_ALLOW_SELF_APPROVAL).')
param reviewAllowSelfApproval bool = false

@description('Registrations one submitter may have awaiting review (MAX_PENDING_PER_USER).')
@minValue(1)
@maxValue(1000000)
param maxPendingPerUser int = 20

@description('Admit http:// endpoint URLs (ALLOW_HTTP_ENDPOINTS); clients would send their tokens in the clear.')
param allowHttpEndpoints bool = false

// Never the private-endpoint subnet or the whole virtual network: a probe admitted there could
// reach the storage account and PostgreSQL on their private addresses (infra/README.md, "Private network").
@description('Reverse-DNS namespaces only administrators may publish under (RESERVED_NAMESPACES), e.g. ["com.contoso"]. Empty: the app\'s own list.')
param reservedNamespaces array = []

@description('CIDRs whose addresses endpoint URLs may name and probes may reach although they are private (ALLOWED_ENDPOINT_NETWORKS), e.g. ["10.20.0.0/16"]. Empty for none.')
param allowedEndpointNetworks array = []

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

@description('Accepted aud values of access tokens (ENTRA_AUDIENCES). Empty: the client id and api://<client id>, as the app defaults.')
param entraAudiences array = []

@description('Microsoft Graph, asked about group membership on group overage (GRAPH_BASE_URL).')
param graphBaseUrl string = 'https://graph.microsoft.com'

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

// Standard_B1ms (35 user connections) is allowed now that Flex takes a maximum as low as 1: the
// budget below lowers the instance count to what its connections carry. The tier follows from the name.
@description('PostgreSQL compute size: Burstable (Standard_B...), General Purpose (Standard_D...) or Memory Optimized (Standard_E...).')
@allowed([
  'Standard_B1ms'
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

@description('Connections the app may hold on the server, summed over every instance of every scale group and the always-ready ones (at least one each). Held below the server\'s user connections less 10 for migrations and operators.')
@minValue(2)
param databaseConnectionBudget int = 320

@description('Seconds to wait for a new database connection (DB_CONNECT_TIMEOUT).')
@minValue(1)
@maxValue(120)
param dbConnectTimeout int = 5

@description('Seconds one statement may run (DB_COMMAND_TIMEOUT).')
@minValue(1)
@maxValue(600)
param dbCommandTimeout int = 10

@description('Seconds to wait for a free pool connection before answering 503 (DB_ACQUIRE_TIMEOUT).')
@minValue(1)
@maxValue(120)
param dbAcquireTimeout int = 5

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

@description('Public IP address of the machine that runs migrations and the role script; empty for no such firewall rule. infra/scripts/migrate-azure.sh removes the rule again at the end of set-up.')
param clientIpAddress string = ''

// ---------------------------------------------------------------------------------------------
// Private network (optional; infra/README.md, "Private network")
// ---------------------------------------------------------------------------------------------

@description('Put the app in a virtual network: VNet integration, private endpoints for storage and PostgreSQL, storage public access off, no Azure-services firewall rule, and a NAT gateway for outbound calls.')
param vnetEnabled bool = false

@description('Address space of the virtual network (vnetEnabled).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnet the app integrates with, delegated to Microsoft.App/environments (vnetEnabled).')
param appSubnetPrefix string = '10.40.1.0/24'

@description('Subnet of the private endpoints of storage and PostgreSQL (vnetEnabled). Keep it out of allowedEndpointNetworks.')
param privateEndpointSubnetPrefix string = '10.40.2.0/24'

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
  Standard_B1ms: 35
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
// with its own asyncpg pool. maximumInstanceCount bounds each per-function scale group, not the
// app, and always-ready instances come on top (Microsoft Learn, "Event-driven scaling in Azure
// Functions", per-function scaling; "Azure Functions Flex Consumption plan hosting", always ready
// instances). Here the groups are the HTTP functions and the probe timer; a timer runs on one
// instance at a time however far the app scales (Microsoft Learn, "Timer trigger for Azure
// Functions"), so the timer's group is counted as one instance. The server can therefore see
//   (HTTP instances + timer instance + always-ready instances) x DB_POOL_MAX_SIZE
// connections from the app, and that product is held within the budget. A pool needs no more
// connections than the requests its instance runs at once (httpPerInstanceConcurrency; 100 is the
// most the app accepts). This bounds the planned scale-out only: the host does not strictly hold
// HTTP bursts to maximumInstanceCount (azure-functions-host #11790), which is why the default
// leaves headroom and the app answers `too many clients` with 503 and Retry-After.
var timerInstances = 1
var effectiveAlwaysReady = min(httpAlwaysReadyInstanceCount, connectionBudget - (timerInstances + 1))
var effectiveMaximumInstanceCount = min(maximumInstanceCount, connectionBudget - (timerInstances + effectiveAlwaysReady))
var appInstances = effectiveMaximumInstanceCount + timerInstances + effectiveAlwaysReady
var dbPoolMaxSize = min(httpPerInstanceConcurrency, 100, connectionBudget / appInstances)
var dbPoolMinSize = 1

// Burstable has no built-in PgBouncer: the request is ignored there, and said so in an output.
var pgBouncerEnabled = enablePgBouncer && (postgresSkuTier != 'Burstable')
var databasePort = pgBouncerEnabled ? 6432 : 5432

// What the deployment changed of the request, reported in the NOTES output.
var budgetNote = (databaseConnectionBudget > connectionBudget) ? 'databaseConnectionBudget was lowered to ${connectionBudget}, the user connections of ${postgresSkuName} less ${reservedConnections} for migrations and operators. ' : ''
var alwaysReadyNote = (httpAlwaysReadyInstanceCount > effectiveAlwaysReady) ? 'httpAlwaysReadyInstanceCount was lowered to ${effectiveAlwaysReady} so that every instance gets a connection. ' : ''
var instancesNote = (maximumInstanceCount > effectiveMaximumInstanceCount) ? 'maximumInstanceCount was lowered to ${effectiveMaximumInstanceCount} so that every instance gets a connection. ' : ''
var networkNote = (vnetEnabled && (contains(allowedEndpointNetworks, privateEndpointSubnetPrefix) || contains(allowedEndpointNetworks, vnetAddressPrefix))) ? 'allowedEndpointNetworks names the private-endpoint subnet or the whole virtual network: probes could reach storage and PostgreSQL; list only the networks of MCP servers. ' : ''
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
    privateNetwork: vnetEnabled
  }
}

module network 'modules/network.bicep' = if (vnetEnabled) {
  name: 'network'
  params: {
    name: 'vnet-registry-${resourceToken}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
  }
}

// The host keeps its leases, timer schedule monitors and keys in blobs and reads the deployment
// package from a blob container; queues and tables serve only triggers this app does not use
// (Azure-Samples/functions-quickstart-python-http-azd, main.bicep storageEndpointConfig), so blob
// is the one storage endpoint made private.
module storageBlobEndpoint 'modules/privateendpoint.bicep' = if (vnetEnabled) {
  name: 'storageBlobEndpoint'
  params: {
    name: 'pe-blob-${resourceToken}'
    location: location
    tags: tags
    serviceId: storage.outputs.id
    groupId: 'blob'
    dnsZoneName: 'privatelink.blob.${environment().suffixes.storage}'
    subnetId: vnetEnabled ? network.outputs.privateEndpointSubnetId : ''
    vnetId: vnetEnabled ? network.outputs.id : ''
  }
}

// A private endpoint, not VNet injection: an existing server cannot move into a virtual network
// later, and the endpoint can be added to the server this template already made (Microsoft
// Learn, "Networking with private link in Azure Database for PostgreSQL flexible server").
module postgresEndpoint 'modules/privateendpoint.bicep' = if (vnetEnabled) {
  name: 'postgresEndpoint'
  params: {
    name: 'pe-psql-${resourceToken}'
    location: location
    tags: tags
    serviceId: postgres.outputs.id
    groupId: 'postgresqlServer'
    dnsZoneName: 'privatelink.postgres.database.azure.com'
    subnetId: vnetEnabled ? network.outputs.privateEndpointSubnetId : ''
    vnetId: vnetEnabled ? network.outputs.id : ''
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
    privateNetwork: vnetEnabled
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
// grouped by concern and merged in one union below. The appsettings resource replaces the whole
// set on every deployment (azure-quickstart-templates #8495), so a setting left out here would be
// lost at the next one: each is a parameter with the app's default, and tests/infra/test_bicep.py
// derives the list from what shared/config.py reads.
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
  DB_CONNECT_TIMEOUT: string(dbConnectTimeout)
  DB_COMMAND_TIMEOUT: string(dbCommandTimeout)
  DB_ACQUIRE_TIMEOUT: string(dbAcquireTimeout)
}
var entraSettings = {
  ENTRA_TENANT_ID: entraTenantId
  ENTRA_API_CLIENT_ID: entraApiClientId
  ENTRA_AUDIENCES: join(entraAudiences, ',')
  ENTRA_AUTHORITY: entraAuthority
  ENTRA_ADMIN_GROUP_ID: entraAdminGroupId
  ENTRA_ADMIN_ROLE: entraAdminRole
  ENTRA_REQUIRED_SCOPE: entraRequiredScope
  ENTRA_ALLOW_GUESTS: entraAllowGuests ? 'true' : 'false'
  GRAPH_BASE_URL: graphBaseUrl
}
// ---------------------------------------------------------------------------------------------
// Notifications (docs/notifications.md)
// ---------------------------------------------------------------------------------------------

// Always a valid schedule: an empty one fails the timer's indexing (azure-functions-host #10346).
@description('NCRONTAB schedule of the notifications round (NOTIFY_SCHEDULE): six fields, seconds first, or five. Never empty.')
@minLength(9)
param notifySchedule string = '*/10 * * * * *'

@description('The API root as people reach it, for links in Teams cards (REGISTRY_PUBLIC_URL), e.g. https://registry.contoso.com/api. Empty: no link.')
param registryPublicUrl string = ''

@description('Test only (NOTIFY_TEST_BACKOFF_SECONDS): every delivery retry waits this many seconds instead of the backoff. Leave empty.')
param notifyTestBackoffSeconds string = ''

var webSettings = {
  // The app answers CORS from this list; no platform CORS on Flex Consumption.
  CORS_ORIGINS: join(corsOrigins, ',')
  LOG_LEVEL: logLevel
  REGISTRY_FEED_AUTH: registryFeedAuth
  REGISTRY_META_NAMESPACE: registryMetaNamespace
  FEED_SNAPSHOT_MAX_AGE: string(feedSnapshotMaxAge)
  DEMAND_FLUSH_SECONDS: string(demandFlushSeconds)
}
var reviewSettings = {
  REVIEW_REQUIRE_MATCH: reviewRequireMatch ? 'true' : 'false'
  REVIEW_ALLOW_SELF_APPROVAL: reviewAllowSelfApproval ? 'true' : 'false'
  MAX_PENDING_PER_USER: string(maxPendingPerUser)
  ALLOW_HTTP_ENDPOINTS: allowHttpEndpoints ? 'true' : 'false'
  ALLOWED_ENDPOINT_NETWORKS: join(allowedEndpointNetworks, ',')
  RESERVED_NAMESPACES: join(reservedNamespaces, ',')
}
var probeSettings = {
  PROBE_ENABLED: probeEnabled ? 'true' : 'false'
  PROBE_SCHEDULE: probeSchedule
  PROBE_BATCH_SIZE: string(probeBatchSize)
  PROBE_CONCURRENCY: string(probeConcurrency)
  PROBE_HISTORY: string(probeHistory)
  DRIFT_POLICY: driftPolicy
}
var notifySettings = {
  NOTIFY_SCHEDULE: notifySchedule
  REGISTRY_PUBLIC_URL: registryPublicUrl
  NOTIFY_TEST_BACKOFF_SECONDS: notifyTestBackoffSeconds
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
var appSettings = union(hostSettings, databaseSettings, entraSettings, webSettings, reviewSettings, probeSettings,
  notifySettings, telemetrySettings)

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
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    httpAlwaysReadyInstanceCount: effectiveAlwaysReady
    virtualNetworkSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    instanceMemoryMB: instanceMemoryMB
    scmBasicAuthEnabled: scmBasicAuthEnabled
    appSettings: appSettings
  }
  // The host starts as soon as the app exists; without its storage role it would fail to start.
  dependsOn: [
    rbac
    storageBlobEndpoint
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
output HTTP_PER_INSTANCE_CONCURRENCY int = httpPerInstanceConcurrency
output HTTP_ALWAYS_READY_INSTANCE_COUNT int = effectiveAlwaysReady
// The budget as the server sees it at full planned scale-out.
output APP_CONNECTIONS int = appInstances * dbPoolMaxSize
output VNET_ENABLED bool = vnetEnabled
output NAT_PUBLIC_IP string = vnetEnabled ? network.outputs.natPublicIpAddress : ''
output DB_POOL_MAX_SIZE int = dbPoolMaxSize
output PGBOUNCER_ENABLED bool = pgBouncerEnabled
output NOTES string = trim('${budgetNote}${alwaysReadyNote}${instancesNote}${networkNote}${pgBouncerNote}')
