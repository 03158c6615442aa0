"""The Azure Functions app: one blueprint per resource, and one of the timer triggers, registered on
one FunctionApp."""

import azure.functions as func

from shared import api, telemetry
from shared.jobs import timers

telemetry.configure()
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
# Every resource's declarations, which the OpenAPI document walks too.
for routes in api.ROUTES:
    app.register_functions(routes.blueprint)
# Background work: the timer triggers, apart from the routes (and from the OpenAPI document).
app.register_functions(timers.blueprint)
