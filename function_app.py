"""The Azure Functions app: one blueprint per resource, registered on one FunctionApp."""

import azure.functions as func

from shared.routes import health

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.blueprint)
