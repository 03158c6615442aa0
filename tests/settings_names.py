"""The names of the settings the app reads, derived from `shared.config.Settings` itself, and the
exceptions to where each must be written down, with the reason: the Bicep check
(tests/infra/test_bicep.py) and the documentation check (tests/test_config.py) both use them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REQUIRED = {"DATABASE_URL": "postgresql://app@db.example.com:5432/registry",
            "ENTRA_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "ENTRA_API_CLIENT_ID": "6c1f3c2e-3b7a-4a8e-9d43-0f6f1d6a2b10"}

# What the Functions host and the telemetry distro read, besides the settings of shared/config.py.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
    "OTEL_LOGS_EXPORTER",
    # azure-identity picks the managed identity by it (shared/config.py reads it only to explain a
    # missing ENTRA_API_CLIENT_ID).
    "AZURE_CLIENT_ID",
}
# What the Functions host reads locally (local.settings.json), where Azure sets its own.
LOCAL_HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", "AzureWebJobsFeatureFlags"}

# Settings the app reads that are deliberately never deployed, with the reason. None today: every
# setting of shared/config.py is a parameter of main.bicep.
LOCAL_ONLY: dict[str, str] = {}
# Settings the app reads that local.settings.json.example deliberately leaves out, with the reason.
NOT_IN_LOCAL_EXAMPLE = {
    "AZURE_CLIENT_ID": "names the user-assigned identity in Azure; set locally, azure-identity would look for a "
                       "managed identity instead of the developer's sign-in",
}


class Recording(dict[str, str]):
    """An environment that notes every name the settings ask for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def load_settings(environment: Mapping[str, str]) -> Any:
    from shared.config import Settings

    return Settings.from_env(environment)


def settings_the_app_reads() -> set[str]:
    """Every name the one settings object asks the environment for when it is loaded."""
    environment = Recording(REQUIRED)
    load_settings(environment)
    return environment.asked
