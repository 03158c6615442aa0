"""The app's own Azure credential (its managed identity in Azure, a developer sign-in locally).

Used for database tokens under DB_AUTH=entra and for Microsoft Graph on group overage. Created
on first use, once per process: the credential caches and renews its tokens itself.
"""

from __future__ import annotations

import functools
from typing import Protocol


class AccessToken(Protocol):
    @property
    def token(self) -> str: ...

    @property
    def expires_on(self) -> int: ...


class TokenCredential(Protocol):
    async def get_token(self, *scopes: str) -> AccessToken: ...


@functools.cache
def managed_credential() -> TokenCredential:
    # Imported here: loading the app must not pay for azure.identity. The requests-based
    # transport, because aiohttp (the default for azure.identity.aio) is not installed in Azure.
    from azure.core.pipeline.transport import AsyncioRequestsTransport
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(transport=AsyncioRequestsTransport())
