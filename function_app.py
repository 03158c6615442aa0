"""The Azure Functions app: one blueprint per resource, registered on one FunctionApp."""

import azure.functions as func

from shared import telemetry
from shared.routes import attestation, docs, feed, health, registrations, revisions, users

telemetry.configure()
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.blueprint)
app.register_functions(users.blueprint)
app.register_functions(registrations.blueprint)
app.register_functions(revisions.blueprint)
app.register_functions(feed.blueprint)
app.register_functions(docs.blueprint)
app.register_functions(attestation.blueprint)
