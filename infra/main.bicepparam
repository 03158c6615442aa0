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

// Burstable B2s: 414 user connections; 40 instances (the Flex minimum) with pools of 8 hold 320
// of them, leaving 94 for migrations, an operator and instances beyond the cap in a burst.
param postgresSkuName = 'Standard_B2s'
param enablePgBouncer = false
param maximumInstanceCount = 40
param databaseConnectionBudget = 320
param postgresGeoRedundantBackup = bool(readEnvironmentVariable('PG_GEO_REDUNDANT_BACKUP', 'true'))

param passwordAuthEnabled = false
param corsOrigins = []
