"""Throughput mode's arithmetic: which CPUs each copy gets, and the common window.

N copies of a cell run at once, each pinned to its own C CPUs; their capacity is the
sequences all of them complete while all of them are measuring. Pure data (numpy only):
`farm.workers.instances` runs the copies, this decides what their samples say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.errors import FarmError

NS = 1_000_000_000
WINDOW_RULE = (
    "calls whose end lies in (start, end]: start = the last instance's first timed call "
    "start, end = the first instance's last timed call end (perf_counter_ns, one clock)"
)


class DoesNotFit(FarmError):
    """A job's instances × cores_per_instance exceed the CPUs it may use."""


def shortfall(instances: int, cores: int, have: int, who: str) -> str | None:
    """Why `who` (pinned to `have` CPUs) cannot run this layout, or None when it fits."""
    need = instances * cores
    if need <= have:
        return None
    return (
        f"needs {need} CPUs ({instances} instance{'s' if instances > 1 else ''} x {cores}), "
        f"{who} has {have}"
    )


def split_cpus(cpus: Sequence[int], instances: int, cores: int, who: str) -> list[list[int]]:
    """Each instance's own CPUs: consecutive runs of the sorted set (neighbours share caches
    the way a real deployment's do); DoesNotFit when the set is too small."""
    why = shortfall(instances, cores, len(cpus), who)
    if why:
        raise DoesNotFit(why)
    ordered = sorted(cpus)
    return [ordered[i * cores : (i + 1) * cores] for i in range(instances)]


@dataclass(frozen=True)
class Window:
    """The span where every instance was measuring, and what they completed inside it."""

    start_ns: int
    end_ns: int
    calls: list[int]  # per instance: timed calls whose end lies in the window

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / NS

    def throughput(self, batch_size: int) -> float | None:
        """Sequences per second over the window; None when the instances never overlapped."""
        if self.end_ns <= self.start_ns:
            return None
        return batch_size * sum(self.calls) / self.seconds

    def as_dict(self, batch_size: int) -> dict[str, Any]:
        return {
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "seconds": self.seconds,
            "calls": sum(self.calls),
            "sequences": batch_size * sum(self.calls),
            "throughput_per_s": self.throughput(batch_size),
            "rule": WINDOW_RULE,
        }


def first_start(samples_ns: npt.NDArray[np.int64], ends_ns: npt.NDArray[np.int64]) -> int:
    """When an instance's timed phase began: its first call's end less its latency."""
    return int(ends_ns[0] - samples_ns[0])


def common_window(
    samples: Sequence[npt.NDArray[np.int64]], ends: Sequence[npt.NDArray[np.int64]]
) -> Window:
    """The common window of instances given their samples and call end times (ns)."""
    start = max(first_start(s, e) for s, e in zip(samples, ends, strict=True))
    end = min(int(e[-1]) for e in ends)
    calls = [int(np.count_nonzero((e > start) & (e <= end))) for e in ends]
    return Window(start, end, calls)
