// PostgreSQL Flexible Server for the registry: Microsoft Entra sign-in only (password sign-in
// off unless asked for), TLS 1.2+ enforced, the extensions our migrations need allow-listed,
// the `registry` database, and firewall rules that never open the whole internet.
//
// Changes to a flexible server are serialised by the service: two child resources written at
// once fail with "ServerIsBusy". Every child below therefore depends on the one before it.

@description('Name of the flexible server; also the first label of its host name.')
@minLength(3)
@maxLength(63)
param name string

@description('Azure region for the server.')
param location string

@description('Tags applied to the server.')
param tags object

@description('PostgreSQL major version.')
@allowed([
  '16'
  '17'
])
param version string

@description('Compute tier: Burstable, GeneralPurpose or MemoryOptimized.')
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param skuTier string

@description('Compute size, for example Standard_B2s (Burstable) or Standard_D2ds_v5 (GeneralPurpose).')
param skuName string

@description('Allocated storage in GiB.')
@minValue(32)
param storageSizeGB int

@description('Days of point-in-time backups kept.')
@minValue(7)
@maxValue(35)
param backupRetentionDays int

@description('Keep backups in the paired region as well. Can only be chosen when the server is created.')
param geoRedundantBackup bool

@description('Allow PostgreSQL password sign-in besides Microsoft Entra. Off by default.')
param passwordAuthEnabled bool

@description('Name of the password administrator; used only when passwordAuthEnabled is true.')
param administratorLogin string

@description('Password of the password administrator; used only when passwordAuthEnabled is true.')
@secure()
param administratorLoginPassword string

@description('Object id of the Microsoft Entra user, group or service principal made server administrator.')
param entraAdminObjectId string

@description('Name of that principal: a user principal name, a group display name or an application name.')
param entraAdminPrincipalName string

@description('Kind of that principal.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param entraAdminPrincipalType string

@description('Name of the application database.')
param databaseName string

@description('Turn on the built-in PgBouncer (port 6432). The caller has already refused it on Burstable.')
param pgBouncerEnabled bool

@description('Public IP address allowed to reach the server (for migrations and the role script); empty for none.')
param clientIpAddress string

@description('Private network on (main.bicep vnetEnabled): the app reaches the server through a private endpoint and the Azure-services rule (0.0.0.0) is left out.')
param privateNetwork bool

@description('Resource id of the Log Analytics workspace that receives server logs and metrics.')
param logAnalyticsWorkspaceId string


resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2025-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: version
    administratorLogin: passwordAuthEnabled ? administratorLogin : null
    administratorLoginPassword: passwordAuthEnabled ? administratorLoginPassword : null
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: passwordAuthEnabled ? 'Enabled' : 'Disabled'
      tenantId: tenant().tenantId
    }
    storage: {
      storageSizeGB: storageSizeGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: geoRedundantBackup ? 'Enabled' : 'Disabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource entraAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2025-08-01' = {
  parent: server
  name: entraAdminObjectId
  properties: {
    principalName: entraAdminPrincipalName
    principalType: entraAdminPrincipalType
    tenantId: tenant().tenantId
  }
}

resource requireSecureTransport 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2025-08-01' = {
  parent: server
  name: 'require_secure_transport'
  properties: {
    value: 'ON'
    source: 'user-override'
  }
  dependsOn: [
    entraAdmin
  ]
}

resource sslMinProtocolVersion 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2025-08-01' = {
  parent: server
  name: 'ssl_min_protocol_version'
  properties: {
    value: 'TLSv1.2'
    source: 'user-override'
  }
  dependsOn: [
    requireSecureTransport
  ]
}

// CREATE EXTENSION is refused for anything not on this list; the migrations use pg_trgm and
// nothing else (gen_random_uuid() is built into PostgreSQL 13 and later, no pgcrypto needed).
resource allowedExtensions 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2025-08-01' = {
  parent: server
  name: 'azure.extensions'
  properties: {
    value: 'PG_TRGM'
    source: 'user-override'
  }
  dependsOn: [
    sslMinProtocolVersion
  ]
}

resource pgBouncer 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2025-08-01' = if (pgBouncerEnabled) {
  parent: server
  name: 'pgbouncer.enabled'
  properties: {
    value: 'true'
    source: 'user-override'
  }
  dependsOn: [
    allowedExtensions
  ]
}

// The app disables its statement cache when DB_PGBOUNCER is true, which is what transaction
// pooling needs; session pooling would give back none of the connections it is meant to save.
resource pgBouncerPoolMode 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2025-08-01' = if (pgBouncerEnabled) {
  parent: server
  name: 'pgbouncer.pool_mode'
  properties: {
    value: 'TRANSACTION'
    source: 'user-override'
  }
  dependsOn: [
    pgBouncer
  ]
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2025-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    allowedExtensions
    pgBouncerPoolMode
  ]
}

// The special 0.0.0.0 - 0.0.0.0 rule admits connections that originate inside Azure, which is
// how a Flex Consumption app without VNet integration reaches the server. With the private network
// the app comes through the private endpoint instead, and the rule is left out: it would admit
// every Azure tenant's resources.
resource allowAzureServices 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2025-08-01' = if (!privateNetwork) {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
  dependsOn: [
    database
  ]
}

resource allowClientIp 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2025-08-01' = if (!empty(clientIpAddress)) {
  parent: server
  name: 'AllowClientIpForMigrations'
  properties: {
    startIpAddress: clientIpAddress
    endIpAddress: clientIpAddress
  }
  dependsOn: [
    allowAzureServices
  ]
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: server
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = server.name
output id string = server.id
output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
