"""Running probes for the API and the timer: settings in, results stored. Nothing here holds a
database transaction while it talks to an endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

from shared.config import ProbeSettings
from shared.db import Database
from shared.probe.result import ProbeResult
from shared.services import probes
from shared.services.probes import Target

logger = logging.getLogger(__name__)
# A round stops claiming new batches after this long; what is left is due at the next round.
ROUND_SECONDS = 10 * 60
# A claimed batch is leased for its worst case (every probe at the time limit) plus a margin.
LEASE_MARGIN = 60.0


async def probe_target(target: Target, settings: ProbeSettings) -> ProbeResult:
    from shared.probe import probe

    return await probe(target.endpoint_url, target.transport, allowed_networks=settings.endpoints.allowed_networks,
                       allow_http=settings.endpoints.allow_http, declared_tools=target.declared_tools,
                       known_tools=target.known_tools)


async def run_round(*, db: Database, settings: ProbeSettings) -> Counter[str]:
    """Probe every due registration, least recently checked first, in bounded batches with
    bounded concurrency; returns how many probes ended in each outcome."""
    from shared.probe.guard import TIME_LIMIT

    started = datetime.now(UTC)
    outcomes: Counter[str] = Counter()
    limit = asyncio.Semaphore(settings.concurrency)
    lease = TIME_LIMIT * -(-settings.batch_size // settings.concurrency) + LEASE_MARGIN

    async def one(target: Target) -> None:
        async with limit:
            result = await probe_target(target, settings)
        await probes.record(db=db, target=target, result=result, drift_policy=settings.drift_policy)
        outcomes[result.outcome] += 1

    while (datetime.now(UTC) - started).total_seconds() < ROUND_SECONDS:
        batch = await probes.claim(db=db, round_started=started, batch=settings.batch_size, lease_seconds=lease)
        if not batch:
            break
        await asyncio.gather(*(one(target) for target in batch))
    logger.info("probe round: %s", dict(outcomes))
    return outcomes
