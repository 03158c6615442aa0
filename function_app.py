"""The Azure Functions app: one blueprint per resource, registered on one FunctionApp."""

import azure.functions as func

from shared.routes import health, registrations, users

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.blueprint)
app.register_functions(users.blueprint)
app.register_functions(registrations.blueprint)
