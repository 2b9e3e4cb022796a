"""The worker-side half of `farm recover` (the use case is farm.app.recover).

After a broker restart (Redis here keeps nothing on disk) or a worker killed outright,
results may wait in the spool and jobs `running` under a dead lease. This writes the
spooled results first, then puts dead leases back to `queued`, for the use case to send.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from farm.db import repo
from farm.db.session import session_factory, transaction
from farm.settings import Settings
from farm.workers import spool
from farm.workers.lease import lease_alive


@dataclass(frozen=True)
class Reclaim:
    """farm.app.ports.Reclaimer over the database and this host's spool folder."""

    settings: Settings

    def __call__(self, campaign_id: int | None) -> tuple[int, int]:
        return reclaim(session_factory(self.settings.database_url), self.settings, campaign_id)


def reclaim(
    factory: sessionmaker[Session], settings: Settings, campaign_id: int | None
) -> tuple[int, int]:
    """(spooled results written, jobs of dead leases re-queued)."""
    spooled, _ = spool.flush(factory, settings.spool_dir)
    requeued = 0
    with transaction(factory) as session:
        for job in repo.running_jobs(session, campaign_id):
            if not repo.lease_held(job, settings.lease_ttl_s, lease_alive):
                repo.requeue(session, job, f"recovered: lease {job.lease} is dead")
                requeued += 1
    return spooled, requeued
