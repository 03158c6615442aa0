"""Application Insights through OpenTelemetry, set up the way the Functions Python worker supports it.

Logs reach Application Insights by one path only: the Functions host, which receives every
record from the worker and stores it as a trace of the invocation. The OpenTelemetry distro
exports spans (requests' dependencies), never logs: infra/ sets OTEL_LOGS_EXPORTER=none for the
worker's distro, and we pass disable_logging when we configure it ourselves. docs/telemetry.md
says why this path and not the others.

`configure()` runs once per process, from function_app at import. It chooses by app setting:

- no APPLICATIONINSIGHTS_CONNECTION_STRING: telemetry is off. Nothing is imported, and the
  database spans below are a shared no-op.
- PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true (what infra/ deploys): the worker has already
  called `configure_azure_monitor` before importing function_app, and its exporter signs in
  with the identity named in APPLICATIONINSIGHTS_AUTHENTICATION_STRING. Configuring again would
  install a second exporter and send everything twice, so we only switch on our own spans and
  the invocation ids on log records.
- otherwise: we call `configure_azure_monitor` ourselves, with a managed identity credential when
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING says `Authorization=AAD` (Application Insights with
  local authentication off accepts nothing else). In Azure, set PYTHON_ENABLE_OPENTELEMETRY=true
  with it, so the worker hands each invocation the host's trace context.

Every `Database.fetch*` call becomes one client span, an Application Insights dependency of
type postgresql whose data is the statement's SQL text (values travel as $n parameters, so
they never appear).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from shared import logs

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

Mode = Literal["off", "worker", "app"]

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
WORKER_TELEMETRY = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
# The values the worker itself reads as true for its app settings.
_WORKER_TRUE = ("1", "true", "t", "yes", "y")
_DEFAULT_POSTGRES_PORT = 5432

_lock = threading.Lock()
_mode: Mode | None = None
_spans: _DatabaseSpans | None = None
_NO_SPAN: AbstractContextManager[Any] = nullcontext()


def configure() -> Mode:
    """Set telemetry up once for the process; later calls return the first answer."""
    global _mode
    with _lock:
        if _mode is None:
            _mode = _configure()
        return _mode


def _configure() -> Mode:
    global _spans
    connection_string = os.environ.get(CONNECTION_STRING, "").strip()
    if not connection_string:
        return "off"
    mode: Mode = "worker"
    if os.environ.get(WORKER_TELEMETRY, "").strip().lower() not in _WORKER_TRUE:
        from azure.monitor.opentelemetry import configure_azure_monitor

        # The resource detector the worker chooses when it configures (the distro's default
        # ones probe for App Service and a VM).
        os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")
        # The host forwards every log record already; the distro exporting them too would
        # store each twice.
        options: dict[str, Any] = {"connection_string": connection_string, "disable_logging": True}
        credential = ingestion_credential(os.environ.get(AUTHENTICATION_STRING, ""))
        if credential is not None:
            options["credential"] = credential
        configure_azure_monitor(**options)
        mode = "app"
    _spans = _DatabaseSpans()
    logs.stamp_invocation_ids()
    return mode


def ingestion_credential(authentication: str) -> TokenCredential | None:
    """The managed identity that APPLICATIONINSIGHTS_AUTHENTICATION_STRING names for Entra ingestion."""
    fields: dict[str, str] = {}
    for part in authentication.split(";"):
        name, _, value = part.partition("=")
        fields[name.strip().lower()] = value.strip()
    if fields.get("authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=fields.get("clientid") or None)


def database_span(statement: str, url: Callable[[], str]) -> AbstractContextManager[Any]:
    """A client span around one database call; `url` is read only when telemetry is on."""
    spans = _spans
    if spans is None:
        return _NO_SPAN
    return spans.start(statement, url())


class _DatabaseSpans:
    def __init__(self) -> None:
        from opentelemetry import trace

        # A proxy until a provider is set, so the order of configure calls does not matter.
        self._tracer = trace.get_tracer(__name__)
        self._client = trace.SpanKind.CLIENT

    def start(self, statement: str, url: str) -> AbstractContextManager[Any]:
        database, host, port = _target(url)
        words = statement.split(None, 1)
        operation = words[0].upper() if words else "SQL"
        return self._tracer.start_as_current_span(f"{operation} {database}", kind=self._client, attributes={
            "db.system.name": "postgresql",
            "db.namespace": database,
            "db.operation.name": operation,
            "db.query.text": statement,
            "server.address": host,
            "server.port": port,
        })


@functools.lru_cache(maxsize=8)
def _target(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return unquote(parts.path.lstrip("/")), parts.hostname or "", parts.port or _DEFAULT_POSTGRES_PORT
