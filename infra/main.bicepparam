using './main.bicep'

// The one parameter file, for `az deployment group create` and for `azd` alike (azd uses a
// main.bicepparam beside main.bicep and passes its environment to it). Tenant-specific values
// come from the environment so that none is committed; the deployment stops with
// "environment variable ... does not exist" when a required one is missing. infra/README.md
// lists the exports. Everything else keeps the safe defaults of main.bicep.

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'registry')

// The API's app registration (infra/README.md, "Microsoft Entra app registration").
param entraApiClientId = readEnvironmentVariable('ENTRA_API_CLIENT_ID')
param entraAdminGroupId = readEnvironmentVariable('ENTRA_ADMIN_GROUP_ID', '')

// The PostgreSQL Microsoft Entra administrator: runs migrations and grant-db-access.sh.
param entraAdminObjectId = readEnvironmentVariable('PG_ADMIN_OBJECT_ID')
param entraAdminPrincipalName = readEnvironmentVariable('PG_ADMIN_NAME')
param entraAdminPrincipalType = readEnvironmentVariable('PG_ADMIN_TYPE', 'User')

// This machine's public IP, for migrations; leave unset to open no such rule.
param clientIpAddress = readEnvironmentVariable('CLIENT_IP_ADDRESS', '')

// Burstable B2s: 414 user connections; 40 HTTP instances and the timer's, 4 requests each with
// pools of 4, hold 164 of them (infra/README.md, "Connection budget").
param postgresSkuName = 'Standard_B2s'
param enablePgBouncer = false
param maximumInstanceCount = 40
param databaseConnectionBudget = 320
param postgresGeoRedundantBackup = bool(readEnvironmentVariable('PG_GEO_REDUNDANT_BACKUP', 'true'))

param passwordAuthEnabled = false
// The private network (infra/README.md, "Private network"); off unless VNET_ENABLED=true.
param vnetEnabled = bool(readEnvironmentVariable('VNET_ENABLED', 'false'))
param corsOrigins = []
