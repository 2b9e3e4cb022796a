"""The one way jobs reach the broker: stored first, then sent, undone on failure.

Rows are committed before their messages go out, so a worker never receives a message for
a row it cannot see yet. What a failed send leaves behind differs per use case (submit
keeps its jobs queued, retry fails them again, rerun deletes what it stored), so each
passes its own undo step and message; none passes none, and the error goes up as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from farm.broker import Broker, Message
from farm.errors import FarmError


def publish(
    broker: Broker,
    messages: Sequence[Message],
    undo: Callable[[], object] | None = None,
    failure: Callable[[str], str] | None = None,
) -> int:
    """Send `messages`; returns how many were sent.

    On a failed send, `undo()` runs, then a FarmError says `failure(<exception name>)`;
    without `failure` the broker's own error is raised.
    """
    if not messages:
        return 0
    try:
        return broker.enqueue(messages)
    except Exception as exc:
        if undo is not None:
            undo()
        if failure is None:
            raise
        raise FarmError(failure(type(exc).__name__)) from None


def queues_of(messages: Sequence[Message]) -> list[str]:
    return sorted({m.queue for m in messages})
