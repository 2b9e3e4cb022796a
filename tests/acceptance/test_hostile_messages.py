"""Hostile broker messages: a real `farm worker` rejects each and goes on.

Messages are published straight onto the worker's queue with kombu, as anyone who can
write to Redis could: pickle (whose unpickling would create a marker file), bodies that
are not JSON, wrong shapes, unknown or mistyped job ids, a wrong schema version, an
unknown task. Afterwards the same worker process runs a valid job, the pickle never ran,
the job named with a wrong schema was not touched and nothing is left in the queue.
"""

from __future__ import annotations

import json
import pickle
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from farm import MESSAGE_SCHEMA
from farm.db import repo
from farm.db.session import session_factory, transaction
from farm.jobs import JobSpec, ModelSpec
from tests.support.harness import (
    SHORT,
    WorkerProcess,
    farm,
    farm_env,
    job_states,
    wait_for,
    write_matrix,
)

pytestmark = pytest.mark.acceptance

POOL = "hostile-msg"
QUEUE = f"farm.{POOL}"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class _Touch:
    """Unpickling this creates a file: proof, by its absence, that pickle was never loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.path,))


def _publish(
    broker_url: str,
    body: bytes | str,
    content_type: str = "application/json",
    task: str = "farm.run_job",
    queue_name: str = QUEUE,
    **header_overrides: Any,
) -> None:
    """One message on a worker's queue, in Celery's protocol 2 layout, bypassing Celery."""
    from kombu import Connection, Exchange, Queue

    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
        "argsrepr": "",
        "kwargsrepr": "",
        "origin": "hostile-test",
        **header_overrides,
    }
    queue = Queue(queue_name, Exchange(queue_name, type="direct"), routing_key=queue_name)
    with Connection(broker_url, connect_timeout=5) as conn, conn.Producer() as producer:
        producer.publish(
            body,
            exchange=queue.exchange,
            routing_key=queue_name,
            declare=[queue],
            content_type=content_type,
            content_encoding="utf-8",
            headers=headers,
        )


def _json(args: list[Any], kwargs: dict[str, Any]) -> str:
    return json.dumps([args, kwargs, EMBED])


def _queued_job(database_url: str) -> int:
    """A queued job with no message: only a hostile message could start it."""
    spec = JobSpec(
        model=ModelSpec(name="distilbert-base-uncased", layers=1),
        input_name="short",
        input_text=SHORT,
        batch_size=1,
        backend="pytorch",
        pool=POOL,
    )
    with transaction(session_factory(database_url)) as session:
        return repo.create_campaign(session, "bait", {}, [spec]).jobs[0].id


def _job_row(database_url: str, job_id: int) -> tuple[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT state, attempts FROM job WHERE id = :j"), {"j": job_id}
            ).one()
    finally:
        engine.dispose()
    return row[0], row[1]


def test_worker_rejects_hostile_messages_and_goes_on(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    import redis

    env = farm_env(migrated_pg, redis_url)
    marker = tmp_path / "side-effect"
    bait = _queued_job(migrated_pg)
    worker = WorkerProcess(POOL, "w-hostile", env, tmp_path / "worker.log")
    pid = worker.proc.pid
    try:
        pickled = pickle.dumps(([_Touch(marker)], {"schema": MESSAGE_SCHEMA}, EMBED))
        good = MESSAGE_SCHEMA
        # pickle, as Celery's own pickle type and as generic binary; YAML with a Python tag
        _publish(redis_url, pickled, "application/x-python-serialize")
        _publish(redis_url, pickled, "application/octet-stream")
        _publish(
            redis_url, f"!!python/object/apply:os.system ['touch {marker}']", "application/x-yaml"
        )  # noqa: E501
        # not JSON at all
        _publish(redis_url, "{not json")
        _publish(redis_url, b"\xff\xfe\x00garbage")
        # JSON, but naming no job, the wrong schema, or a job id of the wrong type
        _publish(redis_url, _json([2_000_000_000], {"schema": good}))
        _publish(redis_url, _json([bait], {"schema": good + 998}))
        _publish(redis_url, _json([bait], {}))
        _publish(redis_url, _json([bait, 1, 2], {"schema": good + 1}))
        for job_id in (str(bait), True, None, -1, 2**70, 1.5, [bait], {"id": bait}):
            _publish(redis_url, _json([job_id], {"schema": good}))
        # an unknown task, and headers Celery itself refuses
        _publish(redis_url, _json([f"touch {marker}"], {}), task="os.system")
        _publish(redis_url, _json([bait], {"schema": good + 1}), eta="garbage")
        _publish(redis_url, _json([bait], {"schema": good + 1}), expires="garbage")

        # The same worker process still serves the pool: a valid job succeeds after them.
        matrix = write_matrix(tmp_path / "ok.yaml", batch_sizes=[1], pools=[POOL])
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])
        wait_for(
            lambda: {s for _, s, _ in job_states(migrated_pg, campaign).values()} == {"succeeded"},
            180,
        )
        assert worker.proc.poll() is None and worker.proc.pid == pid
        client = redis.Redis.from_url(redis_url)
        # Every priority list of the queue (kombu's `QUEUE`, `QUEUE\x06\x163`, ...) is empty.
        assert sum(client.llen(key) for key in client.keys(f"{QUEUE}*")) == 0
        # Nothing of ours waits in kombu's unacked table, to come back after a timeout.
        unacked = [json.loads(v)[2] for v in client.hvals("unacked")]
        assert QUEUE not in unacked
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert not marker.exists(), "a pickle or YAML payload was deserialised"
    assert _job_row(migrated_pg, bait) == ("queued", 0)  # never claimed
    for evidence in ("ContentDisallowed", "not an integer", "message schema"):
        assert evidence in log, evidence


def test_an_input_too_long_for_the_model_fails_on_the_worker_with_a_reason(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    """Under the submit limit (20,000 characters) but over BERT's 512 tokens."""
    env = farm_env(migrated_pg, redis_url)
    matrix = write_matrix(
        tmp_path / "long.yaml", batch_sizes=[1], pools=[POOL], inputs={"long": "word " * 1500}
    )
    worker = WorkerProcess(POOL, "w-long", env, tmp_path / "worker.log")
    try:
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])
        wait_for(
            lambda: {s for _, s, _ in job_states(migrated_pg, campaign).values()} == {"failed"},
            180,
        )
        assert worker.proc.poll() is None
    finally:
        worker.stop()
    status = farm("status", str(campaign), env=env)
    assert "failed job" in status.stdout
    engine = create_engine(migrated_pg)
    try:
        with engine.connect() as conn:
            error = conn.execute(
                text("SELECT error FROM job WHERE campaign_id = :c"), {"c": campaign}
            ).scalar_one()
    finally:
        engine.dispose()
    print(f"worker's reason for a {len('word ' * 1500)}-character input: {error}")
    # "word" is one BERT-uncased token: 1,500 of them plus [CLS] and [SEP]. The reason names
    # the input, its length, the model's limit and the fix -- not just any tokenizer error.
    assert error is not None and re.search(
        r"input 'long' is 1502 tokens; distilbert-base-uncased\S* reads at most 512 "
        r"\(shorten the input\)",
        error,
    ), error


def test_worker_survives_bodies_of_the_wrong_shape(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    pool = "hostile-shape"
    queue = f"farm.{pool}"
    env = farm_env(migrated_pg, redis_url)
    worker = WorkerProcess(pool, "w-shape", env, tmp_path / "worker.log")
    try:
        for body in ('"just a string"', "[]", "null", '"abc"', "[1, 2, 3]", '{"a": 1}'):
            _publish(redis_url, body, queue_name=queue)
        _publish(redis_url, _json([1], {"schema": MESSAGE_SCHEMA}), queue_name=queue, timelimit="x")
        _publish(redis_url, json.dumps([[1], {"schema": 1}, 5]), queue_name=queue)
        matrix = write_matrix(tmp_path / "ok.yaml", batch_sizes=[1], pools=[pool])
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])

        def settled() -> bool:
            states = {s for _, s, _ in job_states(migrated_pg, campaign).values()}
            return states == {"succeeded"} or worker.proc.poll() is not None

        wait_for(settled, 180)
        log = worker.log.read_text()
        assert "Unrecoverable error" not in log, log[-3000:]
        assert worker.proc.poll() is None
        assert {s for _, s, _ in job_states(migrated_pg, campaign).values()} == {"succeeded"}
        assert "not a Farm task message" in log
    finally:
        worker.stop()
        import redis

        redis.Redis.from_url(redis_url).delete(queue)  # a restored poison message must not linger
