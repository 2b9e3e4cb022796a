"""Pipelined publishing keeps Celery's message protocol: on a real Redis, a message pushed by
farm.workers.redispush equals the one `send_task` sends for the same job, ids aside, lands in
the same list for each priority, and `farm recover`'s pending check reads every list."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis

from farm import MESSAGE_SCHEMA
from farm.broker import PRIORITIES, Message
from farm.settings import Settings
from farm.workers.app import PRIORITY_LEVELS, TASK_NAME, create_app, enqueue_jobs
from farm.workers.broker import pending_job_ids, priority_lists

pytestmark = pytest.mark.integration

QUEUE = "farm.a"
IDS = (("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"),
       ("properties", "delivery_tag"))  # fmt: skip


def app_for(url: str) -> Any:
    return create_app(Settings.from_env(database_url="sqlite://", broker_url=url))


def pop_all(client: redis.Redis, queue: str) -> dict[str, list[dict[str, Any]]]:
    """Every message in each of the queue's Redis lists, oldest first, decoded; emptied."""
    found: dict[str, list[dict[str, Any]]] = {}
    for key in client.keys(f"{queue}*"):
        if client.type(key) == b"list":
            found[key.decode()] = [json.loads(m) for m in reversed(client.lrange(key, 0, -1))]
            client.delete(key)
    return found


def send_task(app: Any, job_id: int, priority: str) -> None:
    """What enqueue did before: one send_task per job."""
    app.send_task(TASK_NAME, args=[job_id], kwargs={"schema": MESSAGE_SCHEMA}, queue=QUEUE,
                  routing_key=QUEUE, priority=PRIORITY_LEVELS[priority])  # fmt: skip


def without_ids(message: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(message))
    for part, key in IDS:
        out[part][key] = "<id>"
    return out


@pytest.mark.parametrize("priority", PRIORITIES)
def test_pushed_message_equals_send_tasks_but_for_its_ids(redis_url: str, priority: str) -> None:
    app = app_for(redis_url)
    client = redis.Redis.from_url(redis_url)
    send_task(app, 41, priority)
    sent = pop_all(client, QUEUE)
    assert enqueue_jobs(app, [Message(41, QUEUE, priority), Message(42, QUEUE, priority)]) == 2
    pushed = pop_all(client, QUEUE)

    assert list(pushed) == list(sent)  # the same list: kombu's name for this priority
    ((key, [reference]),) = sent.items()
    first, second = pushed[key]
    assert list(first) == list(reference)  # same fields, same order
    assert without_ids(first) == without_ids(reference)
    for part, field in IDS:  # fresh ids per message, as send_task makes them
        assert first[part][field] != reference[part][field]
        assert first[part][field] != second[part][field]
    assert first["headers"]["id"] == first["headers"]["root_id"]
    assert first["headers"]["id"] == first["properties"]["correlation_id"]
    args, kwargs, _ = json.loads(base64.b64decode(second["body"]))
    assert (args, kwargs) == ([42], {"schema": MESSAGE_SCHEMA})
    assert second["headers"]["argsrepr"] == "[42]"


def test_priorities_go_to_kombus_lists_in_order(redis_url: str) -> None:
    """High in the plain list, which a worker's BRPOP names first; job order kept in each."""
    app = app_for(redis_url)
    client = redis.Redis.from_url(redis_url)
    messages = [Message(i, QUEUE, PRIORITIES[i % 3]) for i in range(9)]
    enqueue_jobs(app, messages)
    lists = priority_lists(app, QUEUE)
    assert lists[0] == QUEUE
    found = pop_all(client, QUEUE)
    order = {key: [json.loads(base64.b64decode(m["body"]))[0][0] for m in found[key]]
             for key in found}  # fmt: skip
    assert order == {
        lists[0]: [0, 3, 6],  # high: step 0
        lists[1]: [1, 4, 7],  # normal: step 3
        lists[2]: [2, 5, 8],  # low: step 6
    }


def test_pending_sees_every_priority(redis_url: str) -> None:
    app = app_for(redis_url)
    enqueue_jobs(app, [Message(1, QUEUE, "high"), Message(2, QUEUE, "normal"),
                       Message(3, QUEUE, "low"), Message(4, "farm.b", "low")])  # fmt: skip
    assert pending_job_ids(app, {QUEUE}) == {1, 2, 3}
    assert pending_job_ids(app, {QUEUE, "farm.b"}) == {1, 2, 3, 4}


def test_other_brokers_get_one_send_task_per_job_with_its_priority() -> None:
    app = app_for("memory://")
    assert enqueue_jobs(app, [Message(1, "q", "high"), Message(2, "q", "low")]) == 2
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("q")
        got = []
        for _ in range(2):
            message = queue.get(timeout=1)
            got.append((message.payload[0], message.properties["priority"]))
            message.ack()
    assert sorted(got) == [([1], PRIORITY_LEVELS["high"]), ([2], PRIORITY_LEVELS["low"])]
