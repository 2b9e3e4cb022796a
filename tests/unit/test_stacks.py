"""Software stacks: every job names one, and its queue reaches only workers of that stack."""

from __future__ import annotations

from types import SimpleNamespace
from typing import get_args

import pytest

from farm.app.status import waiting_warnings
from farm.backends import BACKENDS, OPTION_SCHEMAS
from farm.errors import MatrixError
from farm.matrix import parse_matrix
from farm.stacks import (
    ALLOCATORS,
    BACKEND_STACKS,
    STACKS,
    Allocator,
    queue_for,
    queue_parts,
    resolve_stack,
)


def _matrix(backends: list[object]) -> dict[str, object]:
    return {"name": "s", "models": ["m"], "inputs": {"i": "text"}, "batch_sizes": [1],
            "backends": backends, "pools": ["p"]}  # fmt: skip


@pytest.mark.parametrize(
    ("pool", "allocator", "stack", "queue"),
    [
        ("icelake", "default", "main", "farm.icelake"),
        ("icelake", "tcmalloc", "main", "farm.icelake.tcmalloc"),
        ("spr", "default", "ipex", "farm.spr.ipex"),
        ("spr", "jemalloc", "ipex", "farm.spr.ipex.jemalloc"),
        ("a.b", "default", "main", "farm.a.b"),
    ],
)
def test_queue_names_round_trip(pool: str, allocator: str, stack: str, queue: str) -> None:
    assert queue_for(pool, allocator, stack) == queue
    assert queue_parts(queue) == (pool, stack, allocator)


def test_each_backend_has_a_home_stack_and_refuses_foreign_ones() -> None:
    assert resolve_stack("pytorch", None) == "main"
    assert resolve_stack("pytorch", "ipex") == "ipex"
    assert resolve_stack("ipex", None) == "ipex"
    with pytest.raises(ValueError, match="runs in stack main, not 'ipex'"):
        resolve_stack("openvino", "ipex")


def test_one_backend_table_names_every_backend_everywhere() -> None:
    """Schemas, stacks and implementations all come from farm.backends.BACKENDS."""
    assert set(OPTION_SCHEMAS) == set(BACKEND_STACKS) == set(BACKENDS)
    for name, backend in BACKENDS.items():
        assert backend.stacks and set(backend.stacks) <= set(STACKS), name
        module, _, cls = backend.implementation.partition(":")
        assert module.startswith("farm.workers.backends.") and cls.endswith("Backend"), name
    assert ALLOCATORS == get_args(Allocator) == ("default", "tcmalloc", "jemalloc")


def test_matrix_jobs_carry_their_stack_and_queue() -> None:
    jobs = parse_matrix(_matrix(["pytorch", {"name": "pytorch", "stack": "ipex"},
                                 {"name": "ipex"}])).expand()  # fmt: skip
    assert [(j.backend, j.stack, j.queue) for j in jobs] == [
        ("pytorch", "main", "farm.p"),
        ("pytorch", "ipex", "farm.p.ipex"),
        ("ipex", "ipex", "farm.p.ipex"),
    ]
    with pytest.raises(MatrixError, match=r"backends\.0.*runs in stack main, not 'ipex'"):
        parse_matrix(_matrix([{"name": "openvino", "stack": "ipex"}]))


def _worker(pool: str, queues: list[str], backends: dict[str, str | None]) -> SimpleNamespace:
    return SimpleNamespace(pool=pool, queues=queues, fingerprint={"backends": backends})


def test_status_says_why_waiting_jobs_cannot_run() -> None:
    main = _worker("p", ["farm.p"], {"pytorch": None, "openvino": "openvino not importable"})
    waiting = {("p", "farm.p", "pytorch"): 1, ("p", "farm.p", "openvino"): 2,
               ("p", "farm.p.ipex", "ipex"): 3, ("q", "farm.q", "pytorch"): 4}  # fmt: skip
    warnings = waiting_warnings(waiting, [main])
    assert len(warnings) == 3
    assert "2 job(s) of pool 'p'" in warnings[0] and "openvino not importable" in warnings[0]
    assert "3 job(s)" in warnings[1] and "stack ipex" in warnings[1]
    assert (
        "4 job(s) of pool 'q'" in warnings[2] and "no live worker serves that pool" in warnings[2]
    )


def test_status_warns_once_per_queue_nobody_takes() -> None:
    """Jobs of several backends on one queue no worker serves: one line, counting them all."""
    main = _worker("p", ["farm.p"], {"pytorch": None})
    waiting = {("p", "farm.p.ipex", "ipex"): 2, ("p", "farm.p.ipex", "optimum-ipex"): 2}
    warnings = waiting_warnings(waiting, [main])
    assert len(warnings) == 1
    assert warnings[0].startswith("4 job(s) of pool 'p'") and "stack ipex" in warnings[0]


def test_status_names_the_stack_of_a_pool_nobody_serves() -> None:
    """A pool with no live worker: its main and ipex queues are two lines that say which."""
    waiting = {("p", "farm.p", "pytorch"): 8, ("p", "farm.p.ipex", "ipex"): 4}
    assert waiting_warnings(waiting, []) == [
        "8 job(s) of pool 'p' are waiting and no live worker serves that pool: "
        "start `farm worker --pool p`",
        "4 job(s) of pool 'p' are waiting and no live worker serves that pool: "
        "start `farm worker --pool p` in the ipex stack",
    ]
