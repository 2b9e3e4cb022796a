"""Celery app factory: no import-time globals, JSON only, one job at a time, late ack."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from farm import MESSAGE_SCHEMA
from farm.broker import Message
from farm.errors import ServiceUnavailable
from farm.settings import Settings, mask_url

TASK_NAME = "farm.run_job"
PEAK_TASK = "farm.measure_peak"  # `farm calibrate --peak`, sent to a worker's own queue

# A campaign's priority as Celery's message priority. On Redis, kombu keeps one list per
# step of PRIORITY_STEPS (`queue`, `queue\x06\x163`, ...) and a worker's BRPOP names every
# list of every queue it serves, priority-major, so it pops any waiting high message before a
# normal one, whichever of its queues holds it; 0 is popped first. Other brokers ignore it.
PRIORITY_LEVELS = {"high": 0, "normal": 3, "low": 6}
PRIORITY_STEPS = [0, 3, 6, 9]  # kombu's default: workers of an older Farm poll the same lists


def create_app(settings: Settings) -> Celery:
    app = Celery("farm", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],  # never pickle
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_pool="prefork",
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_default_queue="farm.default",
        broker_connection_timeout=5,
        broker_connection_retry_on_startup=True,
        # A broker blip must not cancel the benchmark in hand: its result goes to the
        # database, and `farm recover` re-sends whatever lost its message.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={
            # Redis redelivers unacked tasks after this; it must outlast the longest job.
            "visibility_timeout": settings.visibility_timeout_s,
            # A partition drops packets without a reset: no command waits more than 5 s,
            # and a BRPOP whose reply is overdue is dropped and reconnected within about
            # 1 + 2 x 4 s (kombu's BRPOP health check), so the worker goes on by itself.
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
            "health_check_interval": 4,
            "priority_steps": PRIORITY_STEPS,
        },
    )
    return app


def check_broker(app: Celery, url: str) -> None:
    """Fail fast, before anything is written, when the broker cannot be reached."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=5)
    except Exception as exc:  # kombu raises transport-specific errors
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(
            f"broker {mask_url(url)} is unreachable ({reason}); start Redis "
            "(e.g. `redis-server --port 6379`) or fix FARM_BROKER_URL / --broker-url"
        ) from None


def is_redis(url: str | None) -> bool:
    return (url or "").startswith(("redis://", "rediss://"))


def enqueue_jobs(app: Celery, jobs: Sequence[Message]) -> int:
    """Send one message per job (to `Job.queue`, at its campaign's priority); returns how
    many were sent. Redis gets them pipelined (farm.workers.redispush), others one by one.
    A plain (job id, queue) pair is sent at the default priority."""
    jobs = [m if isinstance(m, Message) else Message(*m) for m in jobs]
    if is_redis(app.conf.broker_url):
        from farm.workers.redispush import push_messages

        return push_messages(app, TASK_NAME, jobs, PRIORITY_LEVELS)
    sent = 0
    with app.producer_or_acquire() as producer:
        for job_id, queue, priority in jobs:
            app.send_task(
                TASK_NAME,
                args=[job_id],
                kwargs={"schema": MESSAGE_SCHEMA},
                queue=queue,
                routing_key=queue,
                producer=producer,
                priority=PRIORITY_LEVELS[priority],
            )
            sent += 1
    return sent


def request_peak(app: Celery, queue: str, request: str, sizes: list[int], repeats: int) -> None:
    """Ask the worker of `queue` (its direct queue) to measure and store its GEMM peak."""
    app.send_task(
        PEAK_TASK,
        args=[],
        kwargs={"schema": MESSAGE_SCHEMA, "request": request, "sizes": sizes, "repeats": repeats},
        queue=queue,
        routing_key=queue,
    )
