"""Background work, apart from the HTTP routes: the timer triggers (`timers`), the loops they run,
and the event outlet's consumers (shared/events.py) that those loops drain first.

Nothing here runs at import; each trigger imports its loop (and the loop the probe package, the
MCP SDK under it) when it fires.
"""
