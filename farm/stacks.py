"""Software stacks: which Python environment a backend runs in.

The Intel stack cannot live in one environment (IPEX 2.8 needs torch 2.8, the current
torch is 2.13), so a worker runs in one stack and serves only its queues. Every job names
its stack (the cell's `stack:` or the backend's home stack), so the jobs of one cell never
mix stacks, and every result records it.
"""

from __future__ import annotations

from typing import Literal, get_args

from farm.backends import BACKENDS

STACKS = ("main", "ipex")
# Backend → the stacks it runs in; the first is its home, used when a cell names none.
BACKEND_STACKS: dict[str, tuple[str, ...]] = {name: b.stacks for name, b in BACKENDS.items()}
# The allocators a worker can preload: the one list. The Literal is for pydantic models and
# type checkers; ALLOCATORS (the same names, in order) for everything else (click.Choice).
Allocator = Literal["default", "tcmalloc", "jemalloc"]
ALLOCATORS: tuple[str, ...] = get_args(Allocator)


def resolve_stack(backend: str, stack: str | None) -> str:
    """The stack a backend's job runs in; ValueError names the allowed ones."""
    allowed = BACKEND_STACKS.get(backend, ("main",))
    if stack is None:
        return allowed[0]
    if stack not in allowed:
        raise ValueError(
            f"backend {backend!r} runs in stack {' or '.join(allowed)}, not {stack!r}"
        )
    return stack


def queue_for(pool: str, allocator: str = "default", stack: str = "main", cpus: int = 0) -> str:
    """The one place queue names are made: a job reaches only workers that can run it.

    One queue per pool for the main stack and the default allocator (`farm.<pool>`); a
    job for another stack or a preloaded allocator goes to that pool's queue for them,
    which only workers of that stack started with that `--allocator` serve. A job that
    must own `cpus` CPUs at once (throughput mode, 2 or more) goes to `<that queue>.cpus<K>`,
    served only by workers pinned to at least K CPUs (`cpu_queues`): it waits for one.
    """
    parts = ["farm", pool]
    if stack != "main":
        parts.append(stack)
    if allocator != "default":
        parts.append(allocator)
    if cpus > 1:
        parts.append(f"cpus{cpus}")
    return ".".join(parts)


def cpu_queues(queue: str, cpus: int) -> list[str]:
    """The queues a worker pinned to `cpus` CPUs serves for its pool queue `queue`."""
    return [queue, *(f"{queue}.cpus{k}" for k in range(2, cpus + 1))]


def queue_cpus(queue: str) -> int:
    """The CPUs a job of this queue needs at once (0: any worker of its pool will do)."""
    last = queue.rpartition(".")[2]
    return int(last[4:]) if last.startswith("cpus") and last[4:].isdigit() else 0


def queue_parts(queue: str) -> tuple[str, str, str]:
    """(pool, stack, allocator) of a pool queue made by queue_for."""
    _, _, rest = queue.partition(".")
    pieces = rest.split(".")
    if len(pieces) > 1 and queue_cpus(queue):
        pieces.pop()
    allocator = pieces.pop() if len(pieces) > 1 and pieces[-1] in ALLOCATORS else "default"
    stack = pieces.pop() if len(pieces) > 1 and pieces[-1] in STACKS else "main"
    return ".".join(pieces), stack, allocator
