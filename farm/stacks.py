"""Software stacks: which Python environment a backend runs in.

The Intel stack cannot live in one environment (IPEX 2.8 needs torch 2.8, the current
torch is 2.13), so a worker runs in one stack and serves only its queues. Every job names
its stack (the cell's `stack:` or the backend's home stack), so the jobs of one cell never
mix stacks, and every result records the stack it ran in (name and lock hash): a report's
cell is one stack's.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

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


# --- the stack a result ran in ------------------------------------------------------------


def stack_id(name: str, lock: str | None) -> str:
    """How a result records its stack: NAME@LOCK for a venv stacks/build.sh built (LOCK: the
    hash its venv is named by), NAME alone where no lock is known (the dev venv has the main
    stack's packages but not its lock: `main`, another cell than `main@LOCK`)."""
    return f"{name}@{lock}" if lock else name


def stack_name(stack: str) -> str:
    return stack.partition("@")[0]


def stack_matches(wanted: str, stack: str) -> bool:
    """A selector's `stack=ipex` names every lock of the stack; `stack=ipex@LOCK` one lock."""
    return wanted == stack if "@" in wanted else stack_name(stack) == wanted


def recorded_stack(environment: dict[str, Any] | None) -> str | None:
    """The stack a result ran in, from the fingerprint in its environment (None: not recorded,
    as in results from before fingerprints had it; the job's stack stands in)."""
    host = (environment or {}).get("host") or {}
    name = host.get("stack") if isinstance(host, dict) else None
    if not isinstance(name, str) or not name:
        return None
    lock = host.get("stack_lock")
    return stack_id(name, lock if isinstance(lock, str) else None)
