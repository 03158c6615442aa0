// The optional private network (main.bicep, vnetEnabled): a virtual network with a subnet the Flex
// Consumption app integrates with, delegated to Microsoft.App/environments, and a subnet for the
// private endpoints of storage and PostgreSQL; a NAT gateway gives the app a fixed public address
// for outbound calls to public MCP endpoints. Shaped like Azure-Samples/functions-quickstart-python-http-azd
// infra/app/vnet.bicep. Microsoft Learn, "Azure Functions Flex Consumption plan hosting",
// considerations: "The subnet delegation required by Flex Consumption apps is Microsoft.App/environments".

@description('Name of the virtual network.')
param name string

@description('Azure region for the network resources.')
param location string

@description('Tags applied to the network resources.')
param tags object

@description('Address space of the virtual network.')
param addressPrefix string

@description('Prefix of the subnet the Function App integrates with (delegated to Microsoft.App/environments).')
param appSubnetPrefix string

@description('Prefix of the subnet that holds the private endpoints of storage and PostgreSQL.')
param privateEndpointSubnetPrefix string

resource natPublicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-${name}-nat'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
  }
}

// Outbound from the integrated subnet to the internet (public MCP endpoints, Entra, Graph) leaves
// through this gateway, from one static address that endpoint owners can allow-list.
resource natGateway 'Microsoft.Network/natGateways@2024-05-01' = {
  name: 'ng-${name}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: natPublicIp.id
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          natGateway: {
            id: natGateway.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

output id string = vnet.id
output appSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
output natPublicIpAddress string = natPublicIp.properties.ipAddress
