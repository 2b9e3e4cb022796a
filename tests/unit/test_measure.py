"""workers.measure: warm-up then timed calls, garbage collection off only while timing."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pytest

from farm.protocol import Protocol
from workers.measure import Measurement, measure


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


def test_minimum_duration_extends_the_run() -> None:
    import time

    def sleepy() -> None:
        time.sleep(0.002)

    result = measure(sleepy, Protocol(warmup=0, iterations=3, min_duration_s=0.05))
    assert result.samples_ns.size > 3
    assert result.samples_ns.sum() >= 0.05e9 * 0.9
    assert result.stop_reason == "minimum duration met"


def test_maximum_duration_cuts_the_run() -> None:
    import time

    result = measure(
        lambda: time.sleep(0.01), Protocol(warmup=0, iterations=1_000, max_duration_s=0.1)
    )
    assert 2 <= result.samples_ns.size < 1_000
    assert result.stop_reason == "max duration reached"


def test_adaptive_stops_early_on_a_stable_function_and_caps_a_noisy_one() -> None:
    protocol = Protocol(
        warmup=0, iterations=700, target_ci=0.3, target_percentile=90, max_iterations=3_000
    )
    stable = measure(lambda: sum(range(2000)), protocol)
    assert stable.stop_reason == "target reached"
    assert stable.samples_ns.size < 3_000
    rng = np.random.default_rng(0)

    def noisy() -> None:
        # Heavy-tailed work: an occasional call 50x longer keeps p90's interval wide.
        sum(range(100 if rng.random() > 0.12 else 5000))

    wide = Protocol(
        warmup=0, iterations=700, target_ci=0.001, target_percentile=90, max_iterations=1_500
    )
    result = measure(noisy, wide)
    assert result.samples_ns.size == 1_500
    assert result.stop_reason == "call cap reached"


def test_first_call_is_the_first_warmup_call() -> None:
    result = measure(lambda: None, Protocol(warmup=3, iterations=2))
    assert result.first_call_ms == result.warmup_ns[0] / 1e6
