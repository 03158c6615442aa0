"""The timer triggers: one blueprint, registered by function_app.py beside the routes' blueprints.
Each trigger reads its settings and runs its loop, imported when it fires (the probe round brings
the probe package and the MCP SDK with it), so the app's import carries none of them."""

from __future__ import annotations

import azure.functions as func

from shared.config import get_probe_settings, get_settings
from shared.db import database

blueprint = func.Blueprint()


# The Functions host reads the schedule from the PROBE_SCHEDULE app setting (%NAME% binding
# expression). A valid schedule is always deployed: an empty one fails indexing and disables the
# function on Azure (azure-functions-host #10346). PROBE_ENABLED switches probing; while it is
# not true the round does nothing.
@blueprint.timer_trigger(schedule="%PROBE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def probes_round(timer: func.TimerRequest) -> None:
    from shared.jobs.probe_round import run_round

    settings = get_probe_settings()
    if not settings.enabled:
        return
    await run_round(db=database, settings=settings)


# The Functions host reads the schedule from the NOTIFY_SCHEDULE app setting (%NAME% binding
# expression); a valid schedule is always deployed (an empty one fails indexing, azure-functions-host
# #10346). Notifications are on whenever a subscription exists: a round with nothing due costs two
# cheap statements.
@blueprint.timer_trigger(schedule="%NOTIFY_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def notifications_round(timer: func.TimerRequest) -> None:
    from shared.jobs.notify import run_round

    settings = get_settings()
    await run_round(db=database, settings=settings.notify, endpoints=settings.endpoints)
