"""`farm recover`: every job accounted for after a broker restart or a killed worker.

The database is the system of record, the broker only transport. Recovery writes any
spooled results first, puts jobs under dead leases back to `queued`, and sends every
queued job that has no message pending. Sending one twice is harmless: a worker drops a
delivery of a job that is finished or held by a live lease.
"""

from __future__ import annotations

from dataclasses import dataclass

from farm.app.ports import CampaignStore, Reclaimer
from farm.app.publish import publish, queues_of
from farm.broker import Broker


@dataclass(frozen=True)
class Recovery:
    spooled: int = 0
    requeued: int = 0
    resent: int = 0
    pending: int = 0


def recover(store: CampaignStore, broker: Broker, reclaim: Reclaimer, ref: str | None) -> Recovery:
    """For one campaign (an id or a name) or, with `ref` None, for all."""
    broker.check()
    campaign_id = store.find_campaign(ref).id if ref is not None else None
    spooled, requeued = reclaim(campaign_id)
    queued = store.queued_messages(campaign_id)
    pending = broker.pending(set(queues_of(queued)))
    to_send = [m for m in queued if m.job_id not in pending]
    resent = publish(broker, to_send)  # a failed send is the broker's own error, as it was
    return Recovery(spooled, requeued, resent, len(queued) - len(to_send))
