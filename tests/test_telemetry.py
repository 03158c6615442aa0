"""Telemetry: nothing loaded without a connection string, the distro configured once and never
over the worker's, database calls as client spans, and JSON log lines with the invocation id.

Configuring OpenTelemetry changes process-wide state, so those checks run in a child process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any, cast

import httpx
import pytest

from shared import logs
from tests.support import PROJECT_ROOT, RunningHost, app_environment
from tools.authority import DevAuthority
from tools.pgserver import free_port

# Export goes nowhere: port 9 is discard, and nothing listens there.
FAKE_CONNECTION_STRING = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9;"
    "LiveEndpoint=http://127.0.0.1:9"
)
TELEMETRY_SETTINGS = (
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "PYTHON_ENABLE_OPENTELEMETRY", "OTEL_LOGS_EXPORTER",
    "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME",
)
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiIxMjM0NSJ9.c2lnbmF0dXJlLWJ5dGVz"

HostFactory = Callable[[Mapping[str, str]], RunningHost]

# What the worker does before it imports function_app when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY
# is true, with in-memory exporters in place of Application Insights.
WORKER_SETUP = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
"""

QUERY_AND_REPORT = """
import asyncio, json, logging
from shared import logs
from shared.config import DatabaseSettings
from shared.db import Database

class Keep(logging.Handler):
    records = []
    def emit(self, record):
        self.records.append(record)

logging.getLogger().addHandler(Keep())

async def query():
    database = Database(DatabaseSettings.from_env)
    with logs.invocation("invocation-1"):
        value = await database.fetchval("select $1::int + 1", 41)
        logging.getLogger("shared.check").warning("answered %s", value)
    await database.close()

asyncio.run(query())
print(json.dumps({
    "spans": [{"name": span.name, "kind": span.kind.name, "attributes": dict(span.attributes)}
              for span in spans.get_finished_spans()],
    "invocation_ids": [getattr(record, "invocation_id", None) for record in Keep.records
                       if record.name == "shared.check"],
}))
"""


def run_python(script: str, **settings: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in TELEMETRY_SETTINGS}
    # The exporter would otherwise report its own usage to a Microsoft endpoint.
    environment.update({"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", **settings})
    return subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=environment, capture_output=True,
                          text=True, timeout=60, check=True)


def test_importing_the_app_without_a_connection_string_loads_no_telemetry_packages() -> None:
    result = run_python("""
import sys
import function_app
from shared import telemetry
print(telemetry.configure())
print(sorted(name for name in sys.modules if name.startswith(("azure.monitor", "opentelemetry", "azure.identity"))))
""")
    assert result.stdout == "off\n[]\n"


def test_configure_sets_the_distro_up_once_even_when_called_twice() -> None:
    result = run_python("""
import azure.monitor.opentelemetry as distro
calls = []
real = distro.configure_azure_monitor
def counting(**options):
    calls.append(sorted(options))
    real(**options)
distro.configure_azure_monitor = counting
from opentelemetry import trace
from shared import telemetry
print(telemetry.configure(), telemetry.configure(), calls)
print(type(trace.get_tracer_provider()).__module__)
""", APPLICATIONINSIGHTS_CONNECTION_STRING=FAKE_CONNECTION_STRING)
    assert result.stdout == "app app [['connection_string', 'disable_logging']]\nopentelemetry.sdk.trace\n"


# What the Python worker runs before it imports function_app when
# PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is true (azure_functions_worker/otel.py,
# initialize_azure_monitor), then what ends up handling the app's log records and spans.
WORKER_CONFIGURES_THE_DISTRO = """
import logging, os
from azure.monitor.opentelemetry import configure_azure_monitor
os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")
configure_azure_monitor(connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"],
                        logger_name=os.environ.get("PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME", ""))
import function_app
from opentelemetry import trace
handlers = [type(handler).__name__ for name in ("", "shared", "shared.db")
            for handler in logging.getLogger(name).handlers]
print(handlers, type(trace.get_tracer_provider()).__module__)
"""


def deployed_telemetry_settings() -> dict[str, str]:
    """The telemetry app settings infra/main.bicep gives the Function App, literals only."""
    from pycep import BicepParser

    template = BicepParser().parse(text=(PROJECT_ROOT / "infra" / "main.bicep").read_text(encoding="utf-8"))
    settings = cast(dict[str, Any], template["variables"]["telemetrySettings"]["value"])
    return {name: value for name, value in settings.items() if isinstance(value, str) and "${" not in value
            and not value.startswith("monitoring.")}


def test_in_azure_logs_take_the_hosts_path_only_and_spans_the_distros() -> None:
    settings = deployed_telemetry_settings()
    assert settings == {"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true", "OTEL_LOGS_EXPORTER": "none"}
    result = run_python(WORKER_CONFIGURES_THE_DISTRO, APPLICATIONINSIGHTS_CONNECTION_STRING=FAKE_CONNECTION_STRING,
                        **settings)
    # No OpenTelemetry log handler on any logger the app writes to: the worker's forwarding to the
    # host (not present in this process) is the one path; spans still go through the SDK provider.
    assert result.stdout == "[] opentelemetry.sdk.trace\n"


def test_without_the_switch_the_distro_would_export_every_log_record_a_second_time() -> None:
    result = run_python(WORKER_CONFIGURES_THE_DISTRO, APPLICATIONINSIGHTS_CONNECTION_STRING=FAKE_CONNECTION_STRING,
                        PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY="true")
    assert result.stdout == "['LoggingHandler'] opentelemetry.sdk.trace\n"


def test_configure_leaves_the_distro_to_the_worker_when_the_worker_runs_it() -> None:
    result = run_python("""
import sys
from shared import telemetry
print(telemetry.configure(), any(name.startswith("azure.monitor") for name in sys.modules))
""", APPLICATIONINSIGHTS_CONNECTION_STRING=FAKE_CONNECTION_STRING, PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY="true")
    assert result.stdout == "worker False\n"


def test_ingestion_signs_in_with_the_managed_identity_the_authentication_string_names() -> None:
    result = run_python("""
import os
import azure.identity
import azure.monitor.opentelemetry as distro
class Identity:
    def __init__(self, client_id=None):
        self.client_id = client_id
azure.identity.ManagedIdentityCredential = Identity
options = {}
distro.configure_azure_monitor = options.update
from shared import telemetry
telemetry.configure()
print(options["connection_string"] == os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"],
      type(options["credential"]).__name__, options["credential"].client_id)
""", APPLICATIONINSIGHTS_CONNECTION_STRING=FAKE_CONNECTION_STRING,
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING="ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD")
    assert result.stdout == "True Identity 11111111-2222-3333-4444-555555555555\n"


@pytest.mark.parametrize(("authentication", "expected"), [
    ("", None), ("Authorization=AAD", "ManagedIdentityCredential"), ("authorization=aad;clientid=abc", "abc"),
    ("Authorization=Basic", None),
])
def test_the_authentication_string_is_read_like_the_exporter_reads_it(
    authentication: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azure.identity

    from shared.telemetry import ingestion_credential

    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential",
                        lambda client_id=None: client_id or "ManagedIdentityCredential")
    credential: object = ingestion_credential(authentication)
    assert credential == expected


def test_database_calls_become_client_spans_in_the_workers_provider(database_url: str) -> None:
    result = run_python(WORKER_SETUP + "import function_app\n" + QUERY_AND_REPORT,
                        APPLICATIONINSIGHTS_CONNECTION_STRING=FAKE_CONNECTION_STRING,
                        PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY="true", DATABASE_URL=database_url)
    report = json.loads(result.stdout)
    name = database_url.rsplit("/", 1)[1]
    port = int(database_url.split(":")[-1].split("/")[0])
    assert report == {
        "spans": [{"name": f"SELECT {name}", "kind": "CLIENT", "attributes": {
            "db.system.name": "postgresql", "db.namespace": name, "db.operation.name": "SELECT",
            "db.query.text": "select $1::int + 1", "server.address": "127.0.0.1", "server.port": port,
        }}],
        "invocation_ids": ["invocation-1"],
    }


def test_database_calls_make_no_spans_without_a_connection_string(database_url: str) -> None:
    result = run_python(WORKER_SETUP + "import function_app\n" + QUERY_AND_REPORT, DATABASE_URL=database_url)
    assert json.loads(result.stdout) == {"spans": [], "invocation_ids": [None]}


def format_record(message: str, *args: Any, exc_info: Any = None, **extra: Any) -> dict[str, Any]:
    record = logging.getLogger("shared.check").makeRecord(
        "shared.check", logging.WARNING, __file__, 1, message, args, exc_info, extra=extra)
    entry: dict[str, Any] = json.loads(logs.JsonFormatter().format(record))
    return entry


def test_a_log_line_is_json_with_level_logger_message_and_invocation_id() -> None:
    with logs.invocation("8a6f0c1e-5d0b-4d8e-9c39-3f1c2b7a9e10"):
        entry = format_record("decided %s as %s", "r-1", "Approved")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("time"))
    assert entry == {"level": "WARNING", "logger": "shared.check", "message": "decided r-1 as Approved",
                     "invocation_id": "8a6f0c1e-5d0b-4d8e-9c39-3f1c2b7a9e10"}


def test_a_log_line_outside_an_invocation_has_a_null_invocation_id_and_keeps_extra_fields() -> None:
    entry = format_record("pool created", registration_id="r-1", attempt=2)
    del entry["time"]
    assert entry == {"level": "WARNING", "logger": "shared.check", "message": "pool created",
                     "invocation_id": None, "registration_id": "r-1", "attempt": 2}


def test_a_log_line_carries_the_traceback_of_an_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = format_record("failed", exc_info=sys.exc_info())
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: boom")


def test_a_token_never_reaches_a_log_line() -> None:
    entry = format_record("header was Bearer %s", JWT, claims=f"token={JWT}")
    assert (entry["message"], entry["claims"]) == ("header was Bearer [redacted token]", "token=[redacted token]")


def test_the_dev_host_logs_json_lines_with_the_invocation_id(
    authority: DevAuthority, host_factory: HostFactory
) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/registry"
    host = host_factory(app_environment(unreachable, authority))
    assert httpx.get(f"{host.base_url}/health", timeout=10).status_code == 503
    host.stop()

    entries = [json.loads(line) for line in host.log().splitlines() if line.startswith("{")]
    warning = next(entry for entry in entries if entry["logger"] == "shared.db")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", warning.pop("invocation_id"))
    del warning["time"]
    assert warning == {"level": "WARNING", "logger": "shared.db",
                       "message": "database unavailable while creating the pool: ConnectionRefusedError"}
