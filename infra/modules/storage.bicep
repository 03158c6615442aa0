// Host storage (AzureWebJobsStorage) and the Flex Consumption deployment container.
// Shared keys are off: the Functions host and the platform reach it only by managed identity.

@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region for the storage account.')
param location string

@description('Tags applied to the storage account.')
param tags object

@description('Blob container that receives the deployment package.')
param deploymentContainerName string

@description('Private network on (main.bicep vnetEnabled): the public endpoint is closed and the host reaches blobs through a private endpoint.')
param privateNetwork bool

// Flex Consumption without a virtual network reaches its storage over the public endpoint, so
// the network stays open there and identity-based access with shared keys off is the control.
// With the private network, public access is off and only the private endpoint reaches the account.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Without the optional private network, Flex Consumption reaches host storage over its public endpoint; shared keys and anonymous access are off, so only the app's identity gets in (vnetEnabled closes it)
  // checkov:skip=CKV_AZURE_59: Same reason: without the private network the public endpoint is how the platform and the host reach the account; access is by Entra identity only (vnetEnabled closes it)
  // checkov:skip=CKV_AZURE_206: The account holds only the deployment package and host leases, both recreated by a redeploy; locally redundant storage is enough
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetwork ? 'Disabled' : 'Enabled'
    networkAcls: privateNetwork ? {
      defaultAction: 'Deny'
      bypass: 'None'
    } : {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
