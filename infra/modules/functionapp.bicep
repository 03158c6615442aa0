// The Function App on the Flex Consumption plan (FC1), Python 3.11, running as the
// user-assigned identity. HTTPS only, TLS 1.2+, FTP and FTP credentials off. No platform CORS
// (siteConfig.cors): the app answers CORS itself (infra/README.md, "CORS").
//
// Flex Consumption refuses FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION as app
// settings: the runtime lives in functionAppConfig.runtime instead.

@description('Name of the Function App; also the first label of its host name.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region for the plan and the app.')
param location string

@description('Tags applied to the plan and the app.')
param tags object

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Blob endpoint of the host storage account, ending in a slash.')
param storageBlobEndpoint string

@description('Blob container that receives the deployment package.')
param deploymentContainerName string

@description('Most instances of each per-function scale group (the HTTP group, the timer); every instance holds its own database pool.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Concurrent HTTP requests one instance takes (scaleAndConcurrency.triggers.http.perInstanceConcurrency).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Always-ready instances of the HTTP scale group; 0 for none.')
@minValue(0)
param httpAlwaysReadyInstanceCount int

@description('Resource id of the subnet the app integrates with; empty for no virtual network.')
param virtualNetworkSubnetId string

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Allow the SCM (Kudu) site to accept basic-auth publishing credentials. Off: deployments use Entra tokens.')
param scmBasicAuthEnabled bool

@description('Every app setting, already assembled by the caller.')
param appSettings object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption is offered only in some regions; the plan stays portable across regions
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// No `cors` here. Microsoft Learn's Flex Consumption page listed platform CORS as not supported
// ("CORS settings are currently not supported. Exceptions might occur if CORS is configured for
// Flex Consumption apps", considerations, 2024), and browsers report Flex answering preflights
// without CORS headers whatever the setting (azure-functions-dotnet-worker #2524); the app
// answers CORS itself, from CORS_ORIGINS (infra/README.md, "CORS").
// maximumInstanceCount bounds each per-function scale group, not the app; always-ready
// instances come on top (Microsoft Learn, "Event-driven scaling in Azure Functions", per-function
// scaling). Python apps take 1 HTTP request per instance unless told otherwise (Microsoft Learn,
// "Concurrency in Azure Functions", HTTP trigger concurrency).
resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The registry API and its MCP feed are called from the internet (VS Code, GitHub Copilot); every non-public route checks an Entra bearer token
  // checkov:skip=CKV_AZURE_17: Callers authenticate with Entra bearer tokens; MCP clients do not present TLS client certificates
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances itself (siteConfig.numberOfWorkers does not apply)
  // checkov:skip=CKV_AZURE_213: App Service health check would ping /api/health, which queries the database, on every instance every minute; the smoke test and Application Insights watch health instead
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: (httpAlwaysReadyInstanceCount > 0) ? [
          {
            name: 'http'
            instanceCount: httpAlwaysReadyInstanceCount
          }
        ] : []
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: This is the appsettings resource, not authsettings; the app validates Entra tokens itself because health, docs and the feed are anonymous
  // checkov:skip=CKV_AZURE_63: Checks web config logging, which the appsettings resource does not carry; telemetry goes to Application Insights
  // checkov:skip=CKV_AZURE_65: Same: detailed error pages belong to the web config, not to appsettings
  // checkov:skip=CKV_AZURE_66: Same: failed request tracing belongs to the web config, not to appsettings
  // checkov:skip=CKV_AZURE_80: The app runs Python; there is no .NET Framework version to set
  // checkov:skip=CKV_AZURE_88: Flex Consumption runs from a blob deployment package, not from an Azure Files share
  // checkov:skip=CKV_AZURE_222: Public network access is a site property (see the site resource); appsettings has none
  parent: site
  name: 'appsettings'
  properties: appSettings
}

resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: scmBasicAuthEnabled
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
