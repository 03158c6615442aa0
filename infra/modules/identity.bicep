// The one identity the Function App uses for everything: storage, telemetry and PostgreSQL.
// User-assigned, so it exists before the app does and its name can become a database role.

@description('Name of the user-assigned managed identity; it is also the PostgreSQL role the app logs in as.')
param name string

@description('Azure region for the identity.')
param location string

@description('Tags applied to the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
