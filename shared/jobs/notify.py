"""Notifications: audit entries become deliveries, and the timer's round sends them.

`CONSUMER` is an event outlet consumer (shared/events.py): given a batch of audit entries, `handle`
writes one delivery per matching live subscription, in one statement, inside the drain's
transaction, so an entry becomes deliveries exactly once however often the round runs or dies, and
an entry committed late is never passed over. Each round drains it first.

`run_round` then claims, for each subscription, its oldest pending delivery once it is due
(`FOR UPDATE SKIP LOCKED`, so rounds on several instances share the work and order per
subscription holds), sends it through the egress guard with no transaction held, and records the
answer: 2xx is `delivered`; anything else is retried after 1 min, 5 min, 30 min, 2 h, 6 h, then
daily while the delivery is under three days old, then it is `failed`. Every attempt sends the same
body under the same `webhook-id`, so a receiver that answered too late sees it again, never a gap.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from shared.config import EndpointSettings, NotifySettings
from shared.db import Database
from shared.events import Consumer, Event, drain_all
from shared.sql import Statement

if TYPE_CHECKING:
    import httpcore2

    from shared.egress import Resolver

logger = logging.getLogger(__name__)

# Audit actions and the event names subscriptions ask for.
EVENTS = {"Created": "submitted", "Updated": "updated", "Approved": "approved", "Rejected": "rejected",
          "Deleted": "deleted", "Deprecated": "deprecated", "Reactivated": "reactivated", "Published": "published",
          "Drifted": "drifted", "DriftAccepted": "drift_accepted"}
# Seconds before each retry: 1 min, 5 min, 30 min, 2 h, 6 h, then daily while under three days
# old (counted from the first attempt's schedule, so the count of attempts is fixed: eight).
BACKOFF = (60, 300, 1800, 7200, 21600, 86400, 86400)
TIME_LIMIT = 10.0
MAX_READ = 64 * 1024
BATCH = 50
# A claimed delivery is leased for the time limit and a margin: a worker that dies frees it.
LEASE_SECONDS = 60
USER_AGENT = "mcp-endpoint-registry-notifications/1.0"
MAX_ERROR = 1000

_ACTIONS = list(EVENTS)
_NAMES = [EVENTS[action] for action in _ACTIONS]

# One statement: every entry of `log_ids` becomes a delivery to each live subscription that asks
# for its event, with the body it will always be sent with. An entry already delivered to a
# subscription is not queued twice (the outlet may hand an entry over again after a crash).
# `owner_contact` is named in `changes`, never with its values: no e-mail address leaves.
_HANDLE = Statement("""
INSERT INTO deliveries (subscription_id, log_id, event, webhook_id, payload)
SELECT s.subscription_id, a.log_id, e.event, 'msg_' || replace(gen_random_uuid()::text, '-', ''),
       jsonb_build_object(
           'type', e.event,
           'timestamp', to_char(a."timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', jsonb_build_object(
               'registration_id', a.registration_id,
               'server_name', coalesce(a.metadata->>'server_name', v.server_name, r.server_name),
               'endpoint_name', coalesce(v.endpoint_name, r.endpoint_name),
               'revision', a.revision,
               'status', coalesce(a.new_status, v.status),
               'actor', CASE WHEN u.user_id IS NOT NULL
                             THEN jsonb_build_object('user_id', u.user_id, 'display_name', u.display_name) END,
               'reason', CASE WHEN a.action IN ('Approved', 'Rejected') THEN v.reason END,
               'changes', CASE
                   WHEN a.action = 'Updated' THEN
                       (coalesce(a.metadata->'changes', '{}') - 'owner_contact')
                       || CASE WHEN a.metadata->'changes' ? 'owner_contact'
                               THEN '{"owner_contact": {"hidden": true}}'::jsonb ELSE '{}' END
                   WHEN a.action = 'Drifted' THEN
                       jsonb_strip_nulls(jsonb_build_object('added', a.metadata->'added',
                                                            'removed', a.metadata->'removed',
                                                            'changed', a.metadata->'changed',
                                                            'withdrawn', a.metadata->'withdrawn'))
                   ELSE '{}'::jsonb END))
FROM audit_log AS a
JOIN unnest(:actions::text[], :names::text[]) AS e (action, event) ON e.action = a.action
JOIN subscriptions AS s ON s.deleted_at IS NULL AND e.event = ANY (s.events)
JOIN registrations AS r ON r.registration_id = a.registration_id
LEFT JOIN registration_revisions AS v ON v.registration_id = a.registration_id AND v.revision = a.revision
LEFT JOIN users AS u ON u.user_id = a.user_id
WHERE a.log_id = ANY (:log_ids::bigint[])
ORDER BY a.log_id, s.subscription_id
ON CONFLICT (subscription_id, log_id) DO NOTHING
""")
# Each subscription's head (its oldest pending delivery), when due and not leased. The conditions
# sit on the locked row itself, so a head another round just leased is re-checked and passed over.
_CLAIM = Statement("""
WITH heads AS (
    SELECT DISTINCT ON (subscription_id) delivery_id
    FROM deliveries WHERE status = 'pending'
    ORDER BY subscription_id, delivery_id
), due AS (
    SELECT d.delivery_id
    FROM deliveries AS d JOIN heads USING (delivery_id)
    WHERE d.status = 'pending' AND d.due_at <= now() AND (d.leased_until IS NULL OR d.leased_until < now())
    ORDER BY d.due_at
    LIMIT :batch
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries AS d SET leased_until = now() + make_interval(secs => :lease), attempt = d.attempt + 1
FROM due, subscriptions AS s
WHERE d.delivery_id = due.delivery_id AND s.subscription_id = d.subscription_id AND s.deleted_at IS NULL
RETURNING d.delivery_id, d.event, d.webhook_id, d.payload, d.attempt, s.channel, s.url, s.secret
""")
_RECORD = Statement("""
UPDATE deliveries SET status = :status, status_code = :status_code, error = :error, attempted_at = now(),
       leased_until = NULL, due_at = CASE WHEN :status = 'pending' THEN now() + make_interval(secs => :retry_in)
                                          ELSE due_at END
WHERE delivery_id = :delivery_id
""")


async def handle(connection: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Writes: `deliveries` (one row per event and live subscription that asks for it)."""
    if events:
        await connection.execute(_HANDLE.sql, *_HANDLE(actions=_ACTIONS, names=_NAMES,
                                                       log_ids=[event.log_id for event in events]))


CONSUMER = Consumer(name="notifications", handle=handle)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    event: str
    webhook_id: str
    payload: dict[str, Any]
    attempt: int
    channel: str
    url: str
    secret: str | None


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempt: int, settings: NotifySettings) -> float | None:
    """Seconds until the next attempt after `attempt` failed ones, or None when retries ran out."""
    if attempt > len(BACKOFF):
        return None
    if settings.test_backoff_seconds is not None:
        return settings.test_backoff_seconds
    return float(BACKOFF[attempt - 1])


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` under the key that `whsec_<base64>` names."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def request_for(delivery: Claimed, settings: NotifySettings, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: Standard Webhooks for `webhook`, an Adaptive Card for `teams`."""
    if delivery.channel == "teams":
        from shared.jobs.teams import card

        return json.dumps(card(delivery.payload, settings.public_url)).encode(), {"Content-Type": "application/json"}
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(now.timestamp())
    assert delivery.secret is not None
    return body, {"Content-Type": "application/json", "webhook-id": delivery.webhook_id,
                  "webhook-timestamp": str(timestamp),
                  "webhook-signature": sign(delivery.secret, delivery.webhook_id, timestamp, body)}


async def send(delivery: Claimed, *, settings: NotifySettings, endpoints: EndpointSettings,
               resolver: Resolver | None = None, connector: httpcore2.AsyncNetworkBackend | None = None,
               time_limit: float = TIME_LIMIT) -> Answer:
    """One attempt through the egress guard: no redirect followed, 10 s, 64 KiB read. Never raises
    for anything the receiver does; the error never quotes the URL (its query may hold a credential)."""
    import httpx2

    from shared import egress

    body, headers = request_for(delivery, settings, datetime.now(UTC))
    guard = egress.EgressGuard(allowed_networks=endpoints.allowed_networks, allow_http=endpoints.allow_http,
                               resolver=resolver or egress.system_resolver, connector=connector,
                               budget=egress.Budget(max_bytes=MAX_READ))
    try:
        async with asyncio.timeout(time_limit):
            target = await guard.admit(delivery.url)
            async with guard.client(timeout=time_limit) as client:
                response = await client.post(target.url, content=body, headers={**headers, "User-Agent": USER_AGENT})
    except egress.Refused as refusal:
        return Answer(None, _clip(f"refused by the egress guard: {_without_url(str(refusal), delivery.url)}"))
    except egress.Unreachable:
        return Answer(None, "the receiver's host did not resolve")
    except TimeoutError:
        return Answer(None, f"no answer within {time_limit:g} s")
    except Exception as failure:  # what the receiver did; only the kind is recorded
        if isinstance(failure, httpx2.TimeoutException):
            return Answer(None, f"no answer within {time_limit:g} s")
        if guard.budget.exceeded:
            return Answer(None, f"the answer exceeded {MAX_READ} bytes")
        return Answer(None, f"could not deliver ({type(failure).__name__})")
    if 300 <= response.status_code < 400:
        return Answer(response.status_code, "the receiver answered with a redirect, which is not followed")
    if not 200 <= response.status_code < 300:
        return Answer(response.status_code, f"the receiver answered {response.status_code}")
    return Answer(response.status_code, None)


def _without_url(text: str, url: str) -> str:
    return text.replace(url, "the URL")


def _clip(text: str) -> str:
    return text[:MAX_ERROR]


async def claim(*, db: Database, batch: int = BATCH) -> list[Claimed]:
    rows = await db.fetch(_CLAIM.sql, *_CLAIM(batch=batch, lease=float(LEASE_SECONDS)))
    return [Claimed(**dict(row)) for row in rows]


async def record(*, db: Database, delivery: Claimed, answer: Answer, settings: NotifySettings) -> str:
    if answer.delivered:
        status, retry_in = "delivered", 0.0
    else:
        delay = retry_delay(delivery.attempt, settings)
        status, retry_in = ("failed", 0.0) if delay is None else ("pending", delay)
    await db.fetch(_RECORD.sql, *_RECORD(status=status, status_code=answer.status_code, error=answer.error,
                                         retry_in=retry_in, delivery_id=delivery.delivery_id))
    return status


async def run_round(*, db: Database, settings: NotifySettings, endpoints: EndpointSettings,
                    resolver: Resolver | None = None, connector: httpcore2.AsyncNetworkBackend | None = None,
                    time_limit: float = TIME_LIMIT) -> dict[str, int]:
    """Drain the outlet into deliveries, then send due deliveries until none is due; how many events
    were handed over, and how many deliveries ended in each status. A receiver that fails holds
    back only its own subscription's later deliveries."""
    counts = {"queued": await drain_all(db=db, consumer=CONSUMER), "delivered": 0, "pending": 0, "failed": 0}

    async def one(delivery: Claimed) -> None:
        answer = await send(delivery, settings=settings, endpoints=endpoints, resolver=resolver, connector=connector,
                            time_limit=time_limit)
        status = await record(db=db, delivery=delivery, answer=answer, settings=settings)
        counts[status] += 1
        if status != "delivered":
            # Neither the URL nor the body: the query may hold a credential, the body names people.
            logger.info("delivery %s (%s, attempt %s) %s: %s", delivery.webhook_id, delivery.event,
                        delivery.attempt, status, answer.error)

    while batch := await claim(db=db):
        await asyncio.gather(*(one(delivery) for delivery in batch))
        # A retry due at once (the test-only backoff of 0) would be claimed again here without end.
        if settings.test_backoff_seconds is not None:
            break
    return counts
