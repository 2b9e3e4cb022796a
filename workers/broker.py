"""The broker port (farm.broker) on Celery and Redis: the only code that knows their formats."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from functools import cached_property

from celery import Celery

from farm.broker import Message
from farm.settings import Settings
from farm.workers.app import (
    PRIORITY_STEPS,
    check_broker,
    create_app,
    enqueue_jobs,
    is_redis,
    request_peak,
)


class CeleryBroker:
    """farm.broker.Broker; the Celery app is made on first use, so commands that never
    send (status, reports) never import or configure it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def app(self) -> Celery:
        return create_app(self.settings)

    def check(self) -> None:
        check_broker(self.app, self.settings.broker_url)

    def enqueue(self, messages: Sequence[Message]) -> int:
        return enqueue_jobs(self.app, list(messages))

    def pending(self, queues: set[str]) -> set[int]:
        return pending_job_ids(self.app, queues)

    def request_peak(self, queue: str, request: str, sizes: list[int], repeats: int) -> None:
        request_peak(self.app, queue, request, sizes, repeats)


def pending_job_ids(app: Celery, queues: set[str]) -> set[int]:
    """Job ids with a message waiting in a Redis queue, at any priority (empty for other
    brokers).

    Unacknowledged messages do not count: their consumer either holds the job under a
    live lease (then it is `running`, not `queued`) or died, and its message only comes
    back after the visibility timeout, when the worker drops it as finished.
    """
    url = app.conf.broker_url or ""
    if not is_redis(url):
        return set()
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    raw = [m for q in queues for key in priority_lists(app, q) for m in client.lrange(key, 0, -1)]
    ids: set[int] = set()
    for message in raw:
        try:
            # Celery's Redis envelope: JSON whose body is base64 of [args, kwargs, embed].
            envelope = json.loads(message)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            ids.add(int(args[0]))
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # not a Farm message: leave it alone
    return ids


def priority_lists(app: Celery, queue: str) -> list[str]:
    """The Redis lists of one queue, one per priority step (kombu's `_q_for_pri` names)."""
    options = app.conf.broker_transport_options or {}
    sep = options.get("sep", "\x06\x16")
    steps = options.get("priority_steps", PRIORITY_STEPS)
    return [f"{queue}{sep}{step}" if step else queue for step in steps]
