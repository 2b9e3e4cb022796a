"""A Celery task strategy that drops malformed messages instead of dying on them.

Celery builds a Request from a message in the worker's main process. A JSON body of the
wrong shape (`"text"`, `[]`, `null`) or a bad `timelimit` header raises there, outside
Celery's own handling, and stops the whole worker ("Unrecoverable error"); the message
is then restored to the queue and kills the next worker of the pool too. Anyone who can
write to the broker could take a pool down that way.

This strategy checks the layout Farm sends (protocol 2: `[args, kwargs, embed]`) before
handing the message to Celery's default strategy, and turns any error of building the
request into InvalidTaskError, which Celery logs and acknowledges: the message is dropped,
the worker goes on (wired in workers/tasks.py: `Strategy="farm.workers.guard:strategy"`).
Pickle and other non-JSON bodies never get here: `accept_content=["json"]` refuses them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.exceptions import InvalidTaskError
from celery.worker.strategy import default
from kombu.exceptions import ContentDisallowed, DecodeError

Handler = Callable[..., Any]


def _seconds(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def malformed(headers: Any, payload: Any) -> str | None:
    """Why a message is not a well-formed Farm task message, or None when it is."""
    if not isinstance(headers, dict):
        return "headers are not a mapping"
    for key in ("task", "id"):
        if not isinstance(headers.get(key), str):
            return f"header {key!r} is not a string"
    limits = headers.get("timelimit")
    if limits is not None and not (
        isinstance(limits, list | tuple) and len(limits) == 2 and all(map(_seconds, limits))
    ):
        return "header 'timelimit' is not [soft, hard]"
    if not isinstance(payload, list | tuple) or len(payload) != 3:
        return "body is not [args, kwargs, embed]"
    args, kwargs, embed = payload
    if not isinstance(args, list | tuple):
        return "args are not a list"
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        return "kwargs are not a mapping of names"
    if embed is not None and not isinstance(embed, dict):
        return "embed is not a mapping"
    return None


def strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Handler:
    """Celery's default strategy behind a check of the message's layout."""
    handler = default(task, app, consumer, **kwargs)

    def guarded(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> Any:
        # Decoding may raise ContentDisallowed or DecodeError: Celery drops those itself.
        payload = message.payload if body is None else body
        why = malformed(message.headers, payload)
        if why is not None:
            raise InvalidTaskError(f"not a Farm task message: {why}")
        try:
            return handler(message, body, ack, reject, callbacks, **kw)
        except (InvalidTaskError, ContentDisallowed, DecodeError):
            raise
        except Exception as exc:  # any other failure to build the request: drop it
            raise InvalidTaskError(f"malformed task message: {exc!r}") from exc

    return guarded
