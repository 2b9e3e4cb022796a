"""The worker-side half of `farm recover` (the use case is farm.app.recover).

After a broker restart (Redis here keeps nothing on disk) or a worker killed outright,
results may wait in the spool and jobs `running` under a dead lease. This writes the
spooled results first, then puts dead leases back to `queued`, for the use case to send.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery import Celery

from farm.db.jobstore import DbJobStore
from farm.db.session import session_factory
from farm.settings import Settings
from farm.store import JobStore
from farm.workers import spool
from farm.workers.app import enqueue_jobs
from farm.workers.lease import lease_alive

log = logging.getLogger("farm.worker")


@dataclass(frozen=True)
class Reclaim:
    """farm.app.ports.Reclaimer over the database and this host's spool folder."""

    settings: Settings

    def __call__(self, campaign_id: int | None) -> tuple[int, int]:
        store = DbJobStore(session_factory(self.settings.database_url))
        return reclaim(store, self.settings, campaign_id)


def reclaim(store: JobStore, settings: Settings, campaign_id: int | None) -> tuple[int, int]:
    """(spooled results written, jobs of dead leases re-queued)."""
    spooled, _ = spool.flush(store, settings.spool_dir)
    return spooled, store.requeue_dead(campaign_id, settings.lease_ttl_s, lease_alive)


def recover_expired(store: JobStore, app: Celery, settings: Settings) -> int:
    """What every live worker does now and then, so a host lost to the network costs its
    job no more than a lease: jobs whose lease ran out (by the database's clock) go back
    to `queued` and are sent again; returns how many. A late result of the lost attempt is
    then refused, because the job's next attempt holds it (farm.db.repo.complete_job)."""
    messages = store.requeue_expired(settings.lease_ttl_s, lambda m: enqueue_jobs(app, m))
    if messages:
        log.warning("re-queued %d job(s) whose lease expired: %s", len(messages),
                    ", ".join(str(m.job_id) for m in messages))  # fmt: skip
    return len(messages)
