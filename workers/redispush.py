"""Thousands of job messages to Redis at once, in Celery's own envelope.

`send_task` builds and sends each message on its own (about half a millisecond: Celery's
bookkeeping and a round trip), which was most of a 10,000-job submit. Here Celery builds
one message per queue and priority through its own `send_task`, kept rather than sent
(`_Keep`, which does what kombu's Redis channel does up to its LPUSH); each job's message
is that one with its own ids and argument (`renderer`), and they go out in one pipelined
LPUSH per list, the lists kombu's Redis transport pushes to (`Channel._put`). A stock
Celery worker consumes them unchanged; tests/integration/test_redispush.py checks each
field against what `send_task` sends.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery
from kombu import Producer
from kombu.utils.json import dumps
from kombu.utils.uuid import uuid

from farm import MESSAGE_SCHEMA
from farm.broker import Message

CHUNK = 1000  # messages per LPUSH command


class _Keep(Producer):
    """A producer that keeps the message (and its Redis list) instead of pushing it."""

    kept: tuple[str, dict[str, Any]] | None = None

    def _publish(  # type: ignore[override]  # kombu's private signature, positional
        self,
        body: Any,
        priority: Any,
        content_type: Any,
        content_encoding: Any,
        headers: Any,
        properties: Any,
        routing_key: str,
        mandatory: Any,
        immediate: Any,
        exchange: str,
        declare: Any,
        *_: Any,
        **__: Any,
    ) -> None:
        channel = self.channel
        message = channel.prepare_message(
            body, priority, content_type, content_encoding, headers, properties
        )
        for entity in declare or ():
            self.maybe_declare(entity)  # the queue's binding, as send_task declares it
        if exchange:  # Celery sends to a direct queue through the anonymous exchange
            raise RuntimeError(f"expected a direct queue, got exchange {exchange!r}")
        channel._inplace_augment_message(message, exchange, routing_key)
        key = channel._q_for_pri(routing_key, channel._get_message_priority(message))
        self.kept = (key, message)


def template(
    app: Celery, producer: _Keep, task: str, queue: str, priority: int
) -> tuple[str, dict[str, Any]]:
    """The Redis list and the message `send_task` would push for job 0 of `queue`."""
    producer.kept = None
    app.send_task(
        task,
        args=[0],
        kwargs={"schema": MESSAGE_SCHEMA},
        queue=queue,
        routing_key=queue,
        producer=producer,
        priority=priority,
    )
    if producer.kept is None:
        raise RuntimeError("send_task published nothing through the producer it was given")
    return producer.kept


MARKS = {"id": "@farm:id@", "tag": "@farm:tag@", "body": "@farm:body@", "args": "@farm:args@"}


def renderer(channel: Any, base: dict[str, Any]) -> Callable[[int], str]:
    """job id → `base` (a kept message) for that job, as kombu serializes it: new task and
    delivery ids, its argument. The kept message is serialized once with markers where
    those go, and each job's text is that one with its values spliced in (uuids, base64
    and digits need no JSON escaping), ten times cheaper than serializing each message."""
    marked = {
        **base,
        "body": MARKS["body"],
        "headers": {**base["headers"], "id": MARKS["id"], "root_id": MARKS["id"],
                    "argsrepr": MARKS["args"]},  # fmt: skip
        "properties": {**base["properties"], "correlation_id": MARKS["id"],
                       "delivery_tag": MARKS["tag"]},  # fmt: skip
    }
    pieces = re.split("(" + "|".join(MARKS.values()) + ")", dumps(marked))
    _, *rest = json.loads(channel.decode_body(base["body"], channel.body_encoding))
    head, tail = dumps([[0], *rest]).split("0", 1)  # the body's JSON around the job id
    encoding = channel.body_encoding

    def render(job_id: int) -> str:
        body, _ = channel.encode_body(f"{head}{job_id:d}{tail}", encoding)
        values: dict[str, str] = {MARKS["id"]: uuid(), MARKS["tag"]: uuid(),
                                  MARKS["body"]: body, MARKS["args"]: repr([job_id])}  # fmt: skip
        return "".join([values.get(p, p) for p in pieces])

    return render


def push_messages(
    app: Celery, task: str, messages: Sequence[Message], levels: dict[str, int]
) -> int:
    """Send one `task` message per job to Redis; `levels` maps a priority to Celery's."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for m in messages:
        groups[(m.queue, m.priority)].append(m.job_id)
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        keep = _Keep(channel)
        lists: dict[str, list[str]] = defaultdict(list)
        for (queue, priority), job_ids in groups.items():
            key, base = template(app, keep, task, queue, levels[priority])
            render = renderer(channel, base)
            lists[key] += [render(job_id) for job_id in job_ids]
        with channel.conn_or_acquire() as client:
            for key, payloads in lists.items():
                with client.pipeline(transaction=False) as pipe:
                    for i in range(0, len(payloads), CHUNK):
                        pipe.lpush(key, *payloads[i : i + CHUNK])
                    pipe.execute()
    return sum(len(p) for p in lists.values())
