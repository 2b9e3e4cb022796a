"""An in-memory broker adapter: the use cases tested without Redis or Celery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from farm.broker import Message
from farm.errors import ServiceUnavailable


@dataclass
class MemoryBroker:
    """Keeps every sent message per queue; `down` makes check fail, `fail_after` makes
    enqueue raise after that many messages (a broker dying mid-send)."""

    queues: dict[str, list[int]] = field(default_factory=dict)
    priorities: dict[int, str] = field(default_factory=dict)  # job id -> last sent priority
    down: bool = False
    fail_after: int | None = None
    peak_requests: list[tuple[str, str, list[int], int]] = field(default_factory=list)

    def check(self) -> None:
        if self.down:
            raise ServiceUnavailable("broker memory:// is unreachable (down); start it")

    def enqueue(self, messages: Sequence[Message]) -> int:
        sent = 0
        for job_id, queue, priority in (Message(*m) for m in messages):
            if self.fail_after is not None and sent >= self.fail_after:
                raise ConnectionError("broker went away")
            self.queues.setdefault(queue, []).append(job_id)
            self.priorities[job_id] = priority
            sent += 1
        return sent

    def pending(self, queues: set[str]) -> set[int]:
        return {job_id for q in queues for job_id in self.queues.get(q, [])}

    def request_peak(self, queue: str, request: str, sizes: list[int], repeats: int) -> None:
        self.check()
        self.peak_requests.append((queue, request, sizes, repeats))

    def sent(self) -> list[Message]:
        return [Message(j, q, self.priorities[j]) for q, ids in self.queues.items() for j in ids]
