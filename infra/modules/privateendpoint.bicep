// One private endpoint with its private DNS zone, linked to the virtual network, so that the
// service's public name resolves to the endpoint's private address inside the network
// (Microsoft Learn, "Azure Private Endpoint DNS configuration",
// https://learn.microsoft.com/azure/private-link/private-endpoint-dns). Used for the storage
// account's blob service and for the PostgreSQL server.

@description('Name of the private endpoint.')
param name string

@description('Azure region for the private endpoint.')
param location string

@description('Tags applied to the private endpoint and its zone.')
param tags object

@description('Resource id of the service the endpoint connects to.')
param serviceId string

@description('Sub-resource (group id) of the service: blob, postgresqlServer, ...')
param groupId string

@description('Private DNS zone of that sub-resource, e.g. privatelink.blob.core.windows.net.')
param dnsZoneName string

@description('Resource id of the subnet that holds the endpoint.')
param subnetId string

@description('Resource id of the virtual network the DNS zone is linked to.')
param vnetId string

resource zone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: dnsZoneName
  location: 'global'
  tags: tags
}

resource zoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: zone
  name: 'link-${uniqueString(vnetId)}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}

resource endpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: serviceId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource zoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: replace(dnsZoneName, '.', '-')
        properties: {
          privateDnsZoneId: zone.id
        }
      }
    ]
  }
}

output id string = endpoint.id
