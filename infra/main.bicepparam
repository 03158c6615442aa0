using './main.bicep'

// Tenant-specific values come from the environment so that none is committed; the deployment
// stops with "environment variable ... does not exist" when a required one is missing.
// infra/README.md lists the exports. Everything else keeps the safe defaults of main.bicep.

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

// Burstable B1ms: 35 user connections, 30 of them for the app, at most 10 instances of 3 each.
param postgresSkuTier = 'Burstable'
param postgresSkuName = 'Standard_B1ms'
param enablePgBouncer = false
param maximumInstanceCount = 10
param databaseConnectionBudget = 30

param passwordAuthEnabled = false
param corsOrigins = []
