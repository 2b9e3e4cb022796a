"""workers.measure: warm-up then timed calls, garbage collection off only while timing."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from farm.protocol import Protocol
from farm.stats import relative_ci_half_width
from farm.verdict import min_samples
from farm.workers.measure import Measurement, measure


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.gc_enabled_during_calls: set[bool] = set()

    def __call__(self) -> int:
        self.calls += 1
        self.gc_enabled_during_calls.add(gc.isenabled())
        return sum(range(100))


@pytest.mark.parametrize(("warmup", "iterations"), [(0, 1), (3, 10), (100, 1000)])
def test_calls_and_sample_lengths(warmup: int, iterations: int) -> None:
    fn = Counter()
    result = measure(fn, Protocol(warmup=warmup, iterations=iterations))
    assert isinstance(result, Measurement)
    assert fn.calls == warmup + iterations
    assert result.warmup_ns.shape == (warmup,)
    assert result.samples_ns.shape == (iterations,)
    assert result.warmup_ns.dtype == np.int64
    assert result.samples_ns.dtype == np.int64
    assert (result.warmup_ns > 0).all()
    assert (result.samples_ns > 0).all()
    assert result.wall_s > 0


def test_gc_is_off_while_timing_and_on_afterwards() -> None:
    gc.enable()
    fn = Counter()
    measure(fn, Protocol(warmup=2, iterations=5))
    assert fn.gc_enabled_during_calls == {False}
    assert gc.isenabled()


def test_gc_stays_disabled_if_it_was_disabled() -> None:
    gc.disable()
    measure(Counter(), Protocol(warmup=2, iterations=5))
    assert not gc.isenabled()


def test_an_exception_propagates_and_gc_is_re_enabled() -> None:
    gc.enable()
    calls = 0

    def boom() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        measure(boom, Protocol(warmup=2, iterations=5))
    assert calls == 3
    assert gc.isenabled()


def test_an_exception_in_warmup_keeps_a_disabled_gc_disabled() -> None:
    gc.disable()

    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        measure(boom, Protocol(warmup=1, iterations=1))
    assert not gc.isenabled()


def test_return_value_of_fn_is_ignored() -> None:
    result = measure(lambda: "anything", Protocol(warmup=0, iterations=4))
    assert result.samples_ns.shape == (4,)


class Scripted:
    """A function whose every call takes the next latency of a schedule, on a clock of its own.

    Passed to `measure` as both the timed function and its clock, it makes the samples — and
    so every stopping rule — the same on any host, idle or loaded.
    """

    def __init__(self, latency_ns: Callable[[int], int]) -> None:
        self.latency_ns = latency_ns
        self.now = 0
        self.calls = 0

    def clock(self) -> int:
        return self.now

    def __call__(self) -> None:
        self.now += self.latency_ns(self.calls)
        self.calls += 1


def every_tenth_slow(i: int) -> int:
    """90 % of calls take 100 ns, every tenth 5,000 ns: p90 sits on the boundary between."""
    return 5_000 if i % 10 == 9 else 100


def test_minimum_duration_extends_the_run() -> None:
    fn = Scripted(lambda i: 2_000_000)  # 2 ms a call
    result = measure(fn, Protocol(warmup=0, iterations=3, min_duration_s=0.05), fn.clock)
    assert result.samples_ns.size == 25  # the first call at which 50 ms have passed
    assert (result.samples_ns == 2_000_000).all()
    assert result.stop_reason == "minimum duration met"


def test_maximum_duration_cuts_the_run() -> None:
    fn = Scripted(lambda i: 10_000_000)  # 10 ms a call
    protocol = Protocol(warmup=0, iterations=1_000, max_duration_s=0.1)
    result = measure(fn, protocol, fn.clock)
    assert result.samples_ns.size == 10
    assert result.stop_reason == "max duration reached"


def test_the_timed_samples_are_the_clock_differences_around_each_call() -> None:
    fn = Scripted(lambda i: 1_000 + i)
    result = measure(fn, Protocol(warmup=3, iterations=5), fn.clock)
    assert result.warmup_ns.tolist() == [1_000, 1_001, 1_002]
    assert result.samples_ns.tolist() == [1_003, 1_004, 1_005, 1_006, 1_007]


def test_adaptive_stops_at_the_first_check_once_a_constant_function_is_supported() -> None:
    fn = Scripted(lambda i: 1_000)
    protocol = Protocol(
        warmup=0, iterations=10, target_ci=0.3, target_percentile=90, max_iterations=3_000
    )
    result = measure(fn, protocol, fn.clock)
    # never before p90 is supported (64 samples), and at once then: the interval is [1 µs, 1 µs]
    assert result.samples_ns.size == min_samples(90) == 64
    assert result.stop_reason == "target reached"


def test_adaptive_schedule_cannot_meet_the_target_at_any_sample_count() -> None:
    """The premise of the cap test, checked rather than hoped: at every n from the first
    supported one to the cap, p90's interval spans both the fast and the slow latency."""
    samples = np.array([every_tenth_slow(i) for i in range(1_500)], dtype=np.int64)
    for n in range(min_samples(90), samples.size + 1):
        width = relative_ci_half_width(samples[:n], 90)
        assert width is not None and width > 0.45, (n, width)


def test_adaptive_caps_a_function_whose_percentile_interval_stays_wide() -> None:
    fn = Scripted(every_tenth_slow)
    protocol = Protocol(
        warmup=0, iterations=700, target_ci=0.001, target_percentile=90, max_iterations=1_500
    )
    result = measure(fn, protocol, fn.clock)
    assert result.samples_ns.size == 1_500
    assert result.stop_reason == "call cap reached"


def test_adaptive_stops_once_a_noisy_start_is_outweighed() -> None:
    """Slow calls only among the first 100: p90's interval leaves them behind and the run
    stops at a check well before the cap, on the same call on every host."""
    fn = Scripted(lambda i: 5_000 if i < 100 and i % 10 == 9 else 100)
    protocol = Protocol(
        warmup=0, iterations=64, target_ci=0.01, target_percentile=90, max_iterations=3_000
    )
    first = measure(fn, protocol, fn.clock)
    # checks at 64, 114, 164, 214 calls: at 164 the interval's upper rank (p90 + 1.96 sd)
    # still reaches the ten slow calls, at 214 it no longer does
    assert first.stop_reason == "target reached"
    assert first.samples_ns.size == 214
    assert relative_ci_half_width(first.samples_ns, 90) == 0.0


def test_adaptive_on_the_real_clock_ends_within_its_bounds() -> None:
    """The real clock still drives a real run: whatever the host's noise, an adaptive run
    stops between its first supported check and its cap, for one of those two reasons."""
    protocol = Protocol(
        warmup=0, iterations=100, target_ci=0.3, target_percentile=90, max_iterations=2_000
    )
    result = measure(lambda: sum(range(2000)), protocol)
    assert 100 <= result.samples_ns.size <= 2_000
    assert result.stop_reason in {"target reached", "call cap reached"}


def test_first_call_is_the_first_warmup_call() -> None:
    result = measure(lambda: None, Protocol(warmup=3, iterations=2))
    assert result.first_call_ms == result.warmup_ns[0] / 1e6


def test_the_timed_phase_hook_wraps_exactly_the_timed_calls() -> None:
    """execute_job quiets the process (heartbeat stopped, lease extended) in this hook."""
    from contextlib import contextmanager

    fn, log = Counter(), []

    @contextmanager
    def phase(warm: np.ndarray) -> Iterator[None]:
        log.append(("enter", fn.calls, warm.size))
        yield
        log.append(("exit", fn.calls))

    measure(fn, Protocol(warmup=3, iterations=7), phase=phase)
    assert log == [("enter", 3, 3), ("exit", 10)]


def test_the_phase_bound_covers_the_timed_phase() -> None:
    from farm.workers.quiet import MARGIN, phase_bound

    ms = 1_000_000
    warm = np.array([900 * ms, 10 * ms, 20 * ms], dtype=np.int64)  # a cold first call
    # the call cap at the slowest steady warm-up call (20 ms), with the margin
    assert phase_bound(Protocol(iterations=1000), warm, 5, 3600) == pytest.approx(
        MARGIN * 1000 * 0.02
    )
    # a minimum duration longer than the calls take
    assert phase_bound(Protocol(iterations=10, min_duration_s=60), warm, 5, 3600) == (
        pytest.approx(MARGIN * 60.02)
    )
    # max_duration_s caps an adaptive phase (cap 20,000 calls = 400 s at 20 ms)
    adaptive = Protocol(iterations=1000, target_ci=0.01, max_duration_s=30)
    assert phase_bound(adaptive, warm, 5, 3600) == pytest.approx(30 + MARGIN * 0.02)
    # what is left of the job's timeout, when less
    assert phase_bound(Protocol(iterations=1000, timeout_s=20), warm, 5, 3600) == 15
    # no warm-up and no limit: the fallback (the visibility timeout)
    assert phase_bound(Protocol(warmup=0), np.array([], dtype=np.int64), 5, 3600) == 3600
