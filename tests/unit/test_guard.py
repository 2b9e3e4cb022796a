"""farm.workers.guard: malformed task messages become InvalidTaskError (dropped), never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from celery.exceptions import InvalidTaskError

from farm.workers import guard

HEADERS = {"task": "farm.run_job", "id": "abc", "timelimit": [None, None]}
GOOD = [[1], {"schema": 1}, {"callbacks": None}]


@pytest.mark.parametrize(
    ("headers", "payload", "why"),
    [
        (None, GOOD, "headers are not a mapping"),
        ({**HEADERS, "id": None}, GOOD, "header 'id'"),
        ({**HEADERS, "task": 5}, GOOD, "header 'task'"),
        ({**HEADERS, "timelimit": "x"}, GOOD, "timelimit"),
        ({**HEADERS, "timelimit": [1]}, GOOD, "timelimit"),
        ({**HEADERS, "timelimit": [True, None]}, GOOD, "timelimit"),
        (HEADERS, "just a string", "body is not [args, kwargs, embed]"),
        (HEADERS, "abc", "body is not"),
        (HEADERS, [], "body is not"),
        (HEADERS, None, "body is not"),
        (HEADERS, {"a": 1, "b": 2, "c": 3}, "body is not"),
        (HEADERS, [1, 2, 3], "args are not a list"),
        (HEADERS, [[1], [1], {}], "kwargs are not a mapping"),
        (HEADERS, [[1], {"schema": 1}, 5], "embed is not a mapping"),
    ],
)
def test_malformed_messages_are_named(headers: Any, payload: Any, why: str) -> None:
    assert why in (guard.malformed(headers, payload) or "")


@pytest.mark.parametrize("payload", [GOOD, (GOOD[0], GOOD[1], None), [[], {}, {}]])
def test_well_formed_messages_pass(payload: Any) -> None:
    assert guard.malformed(HEADERS, payload) is None
    assert guard.malformed({"task": "t", "id": "i", "timelimit": [1.5, 3]}, payload) is None


class _Message:
    def __init__(self, headers: Any, payload: Any) -> None:
        self.headers, self.payload = headers, payload


def _strategy(monkeypatch: pytest.MonkeyPatch, behaviour: Any) -> Any:
    calls: list[Any] = []

    def handler(message: Any, body: Any, *_: Any, **__: Any) -> Any:
        calls.append(message)
        return behaviour(message)

    monkeypatch.setattr(guard, "default", lambda *a, **k: handler)
    return guard.strategy(None, None, None), calls


def test_the_strategy_drops_malformed_messages_before_celery_sees_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, calls = _strategy(monkeypatch, lambda m: "ran")
    with pytest.raises(InvalidTaskError, match="not a Farm task message: body is not"):
        run(_Message(HEADERS, "just a string"), None, None, None, None)
    assert calls == []
    good = _Message(HEADERS, GOOD)
    assert run(good, None, None, None, None) == "ran" and calls == [good]


def test_the_strategy_turns_request_errors_into_invalid_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(_: Any) -> Any:
        raise ValueError("not enough values to unpack")

    run, _ = _strategy(monkeypatch, boom)
    with pytest.raises(InvalidTaskError, match="malformed task message: ValueError"):
        run(_Message(HEADERS, GOOD), None, None, None, None)
