"""The probe round, run by the timer: drain probe queueing, then probe every due registration and
store what each probe found, then prune old probes. The probe package probes and returns results;
storing them is this job's. Nothing here holds a database transaction while it talks to an
endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

from shared import events
from shared.config import ProbeSettings
from shared.db import Database
from shared.jobs import probe_queueing
from shared.services import probes
from shared.services.probes import Target

logger = logging.getLogger(__name__)
# A round stops claiming new batches after this long; what is left is due at the next round.
ROUND_SECONDS = 10 * 60
# A claimed batch is leased for its worst case (every probe at the time limit) plus a margin.
LEASE_MARGIN = 60.0
# A target whose probe could not be recorded at all (not even as a failed probe) is checked again
# after this long, so that it cannot hold the head of the queue round after round.
DEFER_SECONDS = 60 * 60
# Registrations pruned by one statement of the round's pruning.
PRUNE_BATCH = 500


async def run_round(*, db: Database, settings: ProbeSettings) -> Counter[str]:
    """Queue what the writes since the last round asked for, then probe every due registration,
    least recently checked first, in bounded batches with bounded concurrency, then prune old
    probes; returns how many probes ended in each outcome (`failed` counts targets whose probe
    could not be recorded). One target's failure is its own: the others of its batch and the later
    batches are probed all the same."""
    from shared.egress import TIME_LIMIT
    from shared.probe import probe_target

    # Before the round's start is taken: an entry is due at its own time, which is then before it.
    await events.drain_all(db=db, consumer=probe_queueing.CONSUMER)
    started = datetime.now(UTC)
    outcomes: Counter[str] = Counter()
    limit = asyncio.Semaphore(settings.concurrency)
    lease = TIME_LIMIT * -(-settings.batch_size // settings.concurrency) + LEASE_MARGIN

    async def one(target: Target) -> None:
        try:
            async with limit:
                result = await probe_target(target, settings)
            await probes.record(db=db, target=target, result=result, drift_policy=settings.drift_policy)
            outcomes[result.outcome] += 1
        except Exception as failure:
            # The name of the failure only: its text may quote what the endpoint sent.
            outcomes["failed"] += 1
            logger.warning("probe of %s could not be recorded (%s); its next check is deferred",
                           target.registration_id, type(failure).__name__)
            try:
                await probes.defer(db=db, registration_id=target.registration_id, seconds=DEFER_SECONDS)
            except Exception as again:  # the lease ends on its own
                logger.warning("could not defer the probe of %s (%s)", target.registration_id, type(again).__name__)

    while _within(started):
        batch = await probes.claim(db=db, round_started=started, batch=settings.batch_size, lease_seconds=lease)
        if not batch:
            break
        await asyncio.gather(*(one(target) for target in batch), return_exceptions=True)
    pruned = await _prune(db, settings, started)
    logger.info("probe round: %s; %s old probes pruned", dict(outcomes), pruned)
    return outcomes


def _within(started: datetime) -> bool:
    return (datetime.now(UTC) - started).total_seconds() < ROUND_SECONDS


async def _prune(db: Database, settings: ProbeSettings, started: datetime) -> int:
    """Prune the probes of every registration probed since its last pruning (by whatever asked),
    in bounded statements, within the round's time."""
    deleted = 0
    try:
        while _within(started):
            registrations, probed = await probes.prune(db=db, history=settings.history, batch=PRUNE_BATCH)
            deleted += probed
            if registrations < PRUNE_BATCH:
                break
    except Exception as failure:  # the next round prunes what this one left
        logger.warning("pruning old probes failed (%s)", type(failure).__name__)
    return deleted
