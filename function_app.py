"""The Azure Functions app: one blueprint per resource, registered on one FunctionApp."""

import azure.functions as func

from shared import api, telemetry

telemetry.configure()
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
# Every resource's declarations, which the OpenAPI document walks too.
for routes in api.ROUTES:
    app.register_functions(routes.blueprint)
