"""workers.measure: warm-up then timed calls, garbage collection off only while timing."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pytest

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
    result = measure(fn, warmup=warmup, iterations=iterations)
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
    measure(fn, warmup=2, iterations=5)
    assert fn.gc_enabled_during_calls == {False}
    assert gc.isenabled()


def test_gc_stays_disabled_if_it_was_disabled() -> None:
    gc.disable()
    measure(Counter(), warmup=2, iterations=5)
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
        measure(boom, warmup=2, iterations=5)
    assert calls == 3
    assert gc.isenabled()


def test_an_exception_in_warmup_keeps_a_disabled_gc_disabled() -> None:
    gc.disable()

    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        measure(boom, warmup=1, iterations=1)
    assert not gc.isenabled()


def test_return_value_of_fn_is_ignored() -> None:
    result = measure(lambda: "anything", warmup=0, iterations=4)
    assert result.samples_ns.shape == (4,)
