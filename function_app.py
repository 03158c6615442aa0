"""The Azure Functions app: one blueprint per resource, registered on one FunctionApp."""

import azure.functions as func

from shared import openapi, telemetry

telemetry.configure()
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
# Every resource's declarations, which the OpenAPI document walks too.
for routes in openapi.ROUTES:
    app.register_functions(routes.blueprint)
