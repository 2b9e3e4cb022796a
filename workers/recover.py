"""Reconcile the database (the system of record) with the broker (only transport).

After a broker restart (Redis here keeps nothing on disk) or a worker killed outright,
jobs wait `queued` with no message, or `running` under a dead lease. Recovery writes any
spooled results first, puts dead leases back to `queued`, and sends every queued job
that has no message pending. Sending one twice is harmless: a worker drops a delivery
of a job that is finished or held by a live lease.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from farm.db import repo
from farm.db.session import transaction
from farm.settings import Settings
from farm.workers import spool
from farm.workers.app import enqueue_jobs
from farm.workers.lease import lease_alive

log = logging.getLogger("farm.recover")


@dataclass
class Recovery:
    spooled: int = 0
    requeued: int = 0
    resent: int = 0
    pending: int = 0


def pending_job_ids(app: Celery, queues: set[str]) -> set[int]:
    """Job ids with a message waiting in a Redis queue (empty for other brokers).

    Unacknowledged messages do not count: their consumer either holds the job under a
    live lease (then it is `running`, not `queued`) or died, and its message only comes
    back after the visibility timeout, when the worker drops it as finished.
    """
    url = app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://")):
        return set()
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    raw = [m for q in queues for m in client.lrange(q, 0, -1)]
    ids: set[int] = set()
    for message in raw:
        try:
            envelope = json.loads(message)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            ids.add(int(args[0]))
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # not a Farm message: leave it alone
    return ids


def recover(
    app: Celery, factory: sessionmaker[Session], settings: Settings, campaign_id: int | None
) -> Recovery:
    outcome = Recovery()
    outcome.spooled, _ = spool.flush(factory, settings.spool_dir)
    with transaction(factory) as session:
        for job in repo.running_jobs(session, campaign_id):
            if not repo.lease_held(job, settings.lease_ttl_s, lease_alive):
                repo.requeue(session, job, f"recovered: lease {job.lease} is dead")
                outcome.requeued += 1
        queued = [(job.id, job.queue) for job in repo.queued_jobs(session, campaign_id)]
    pending = pending_job_ids(app, {queue for _, queue in queued})
    to_send = [(job_id, queue) for job_id, queue in queued if job_id not in pending]
    outcome.pending = len(queued) - len(to_send)
    outcome.resent = enqueue_jobs(app, to_send) if to_send else 0
    return outcome
