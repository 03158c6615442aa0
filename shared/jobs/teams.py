"""The Adaptive Card a Teams Workflows webhook receives for one event: who, what, which server, a
link to the registration, and a drift's diff summarised. Built from the stored delivery body, so
it names people only by display name, as the webhook body does."""

from __future__ import annotations

from typing import Any

_TITLES = {"submitted": "submitted for review", "updated": "updated", "approved": "approved", "rejected": "rejected",
           "deleted": "deleted", "deprecated": "deprecated", "reactivated": "reactivated", "published": "republished",
           "drifted": "drifted from its approved tools", "drift_accepted": "drift accepted",
           "probe_failed": "probe failed", "test": "test delivery"}
# Names listed in a drift summary before "and n more": a card has no room for a whole surface.
MAX_NAMES = 10


def _names(items: Any) -> str:
    names = [str(item.get("name", item)) if isinstance(item, dict) else str(item) for item in items or []]
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def drift_summary(changes: dict[str, Any]) -> str:
    parts = [f"{label}: {_names(changes.get(key))}" for key, label in
             (("added", "added"), ("removed", "removed"), ("changed", "changed")) if changes.get(key)]
    return "; ".join(parts) or "the tool surface changed"


def card(payload: dict[str, Any], public_url: str | None) -> dict[str, Any]:
    """The message a Workflows "post to a channel when a webhook request is received" flow takes:
    one attachment holding an Adaptive Card 1.4."""
    event, data = str(payload.get("type")), payload.get("data") or {}
    server = data.get("server_name") or data.get("endpoint_name") or "a registration"
    actor = (data.get("actor") or {}).get("display_name") or "the registry"
    facts = [{"title": "Server", "value": str(server)}, {"title": "By", "value": str(actor)}]
    if data.get("revision") is not None:
        facts.append({"title": "Revision", "value": str(data["revision"])})
    if data.get("status"):
        facts.append({"title": "Status", "value": str(data["status"])})
    changes = data.get("changes") or {}
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
         "text": f"{server} {_TITLES.get(event, event)}"},
        {"type": "FactSet", "facts": facts},
    ]
    if event == "drifted":
        body.append({"type": "TextBlock", "wrap": True, "text": f"Drift: {drift_summary(changes)}"})
    elif changes:
        body.append({"type": "TextBlock", "wrap": True, "text": "Changed: " + ", ".join(sorted(changes))})
    if data.get("reason"):
        body.append({"type": "TextBlock", "wrap": True, "text": f"Reason: {data['reason']}"})
    actions = []
    if public_url and data.get("registration_id"):
        actions.append({"type": "Action.OpenUrl", "title": "Open the registration",
                        "url": f"{public_url}/registrations/{data['registration_id']}"})
    content = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
               "version": "1.4", "body": body, "actions": actions}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": content}]}
