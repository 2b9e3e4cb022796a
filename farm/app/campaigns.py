"""Campaign use cases: submit, cancel, retry, rerun, delete.

Each checks the broker (the wiring checked the database) before changing anything, so a
dead service is one clear line and no half-done change; each sends through `publish`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from farm.app.ports import CampaignStore, Retried, Stored, Summary
from farm.app.publish import publish
from farm.broker import DEFAULT_PRIORITY, PRIORITIES, Broker
from farm.errors import FarmError
from farm.jobs import JobSpec


def submit(
    store: CampaignStore,
    broker: Broker,
    name: str,
    matrix: dict[str, Any],
    jobs: list[JobSpec],
    priority: str = DEFAULT_PRIORITY,
) -> Stored:
    """Store the campaign at `priority`, then send its jobs; if sending fails they stay
    queued (a later `farm recover` sends them, at the same priority)."""
    if priority not in PRIORITIES:
        raise FarmError(f"unknown priority {priority!r}; use one of {', '.join(PRIORITIES)}")
    broker.check()
    stored = store.create_campaign(name, matrix, jobs, priority)
    publish(
        broker,
        stored.messages,
        failure=lambda error: (
            f"campaign {stored.campaign_id} was stored but enqueuing failed ({error}); "
            "its jobs stay queued in the database"
        ),
    )
    return stored


def retry(store: CampaignStore, broker: Broker, ref: str, max_attempts: int) -> Retried:
    """Failed jobs queued again and sent; if sending fails they are failed again, as before."""
    broker.check()
    retried = store.retry(ref, max_attempts)
    publish(
        broker,
        retried.messages,
        undo=lambda: store.undo_retry(retried),
        failure=lambda error: (
            f"campaign {retried.campaign_id}: sending the retried jobs failed "
            f"({error}); they are failed again, as before"
        ),
    )
    return retried


@dataclass(frozen=True)
class Rerun:
    stored: Stored
    rerun_of: int


def rerun(store: CampaignStore, broker: Broker, ref: str, pool: str) -> Rerun:
    """The same cells as a new campaign on `pool`; if sending fails nothing is kept (a
    message that did get through names a deleted job, which a worker drops)."""
    broker.check()
    stored, old_id = store.rerun(ref, pool)
    publish(
        broker,
        stored.messages,
        undo=lambda: store.delete_campaign(stored.campaign_id),
        failure=lambda error: (
            f"re-run of campaign {old_id}: sending its jobs failed ({error}); nothing was stored"
        ),
    )
    return Rerun(stored, old_id)


def delete(store: CampaignStore, ref: str, confirm: Callable[[Summary], object]) -> Summary:
    """Delete the campaign once `confirm(summary)` returns (it raises to refuse)."""
    found = store.describe(ref)
    confirm(found)
    store.delete_campaign(found.campaign_id)
    return found
