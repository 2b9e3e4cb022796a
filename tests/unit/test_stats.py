"""farm.stats: summaries from raw nanosecond samples, the compact encoding; pooling as
reports pool (farm.reports.cells.pool_samples)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from farm.reports.cells import Cell, pool_samples
from farm.stats import NS_PER_MS, Summary, decode_samples, encode_samples


def pooled(blobs: list[bytes]) -> Cell:
    """A cell several jobs measured, its statistics pooled as reports pool them."""
    cell = Cell("m", "short", 1, "sequential", "pytorch", {}, "icelake", results=len(blobs))
    cell.job_ids = list(range(len(blobs)))
    samples = {i: decode_samples(b).astype(np.float64) / NS_PER_MS for i, b in enumerate(blobs)}
    pool_samples([cell], samples)
    return cell


def summary_of(cell: Cell) -> Summary:
    return Summary(
        n=cell.n or 0,
        mean_ms=cell.mean_ms or 0.0,
        std_ms=cell.std_ms or 0.0,
        min_ms=cell.min_ms or 0.0,
        max_ms=cell.max_ms or 0.0,
        p50_ms=cell.p50_ms or 0.0,
        p90_ms=cell.p90_ms or 0.0,
        p99_ms=cell.p99_ms or 0.0,
    )

ONE_TO_HUNDRED_MS_NS = [ms * NS_PER_MS for ms in range(1, 101)]


def test_summary_of_1_to_100_ms() -> None:
    s = Summary.from_ns(ONE_TO_HUNDRED_MS_NS)
    assert s.n == 100
    assert s.mean_ms == pytest.approx(50.5)
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)  # numpy's linear interpolation
    assert s.min_ms == 1.0
    assert s.max_ms == 100.0
    assert s.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.std_ms == pytest.approx(29.011491975882016)


def test_summary_accepts_a_numpy_array_and_ignores_order() -> None:
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(np.array(ONE_TO_HUNDRED_MS_NS, dtype=np.int64))
    assert Summary.from_ns(shuffled) == Summary.from_ns(ONE_TO_HUNDRED_MS_NS)


def test_summary_keeps_sub_millisecond_precision() -> None:
    s = Summary.from_ns([1_500_000, 2_500_000])
    assert s.mean_ms == pytest.approx(2.0)
    assert s.min_ms == pytest.approx(1.5)
    assert s.max_ms == pytest.approx(2.5)


def test_single_sample_has_zero_std() -> None:
    s = Summary.from_ns([7 * NS_PER_MS])
    assert s.n == 1
    assert s.std_ms == 0.0
    assert s.mean_ms == s.p50_ms == s.p99_ms == s.min_ms == s.max_ms == 7.0


@pytest.mark.parametrize("empty", [[], np.array([], dtype=np.int64)], ids=["list", "array"])
def test_empty_samples_raise(empty: object) -> None:
    with pytest.raises(ValueError):
        Summary.from_ns(empty)  # type: ignore[arg-type]


def test_as_dict_has_every_field() -> None:
    d = Summary.from_ns(ONE_TO_HUNDRED_MS_NS).as_dict()
    assert set(d) == {"n", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p99_ms"}
    assert d["n"] == 100
    assert d["p99_ms"] == pytest.approx(99.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encoding_round_trip_is_lossless_for_random_int64(seed: int) -> None:
    rng = np.random.default_rng(seed)
    info = np.iinfo(np.int64)
    samples = rng.integers(info.min, info.max, size=1000, dtype=np.int64, endpoint=True)
    decoded = decode_samples(encode_samples(samples))
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, samples)


@pytest.mark.parametrize(
    "samples",
    [[], [0], [1], [np.iinfo(np.int64).max, np.iinfo(np.int64).min, -1]],
    ids=["empty", "zero", "one", "extremes"],
)
def test_encoding_round_trip_edge_cases(samples: list[int]) -> None:
    decoded = decode_samples(encode_samples(samples))
    np.testing.assert_array_equal(decoded, np.array(samples, dtype=np.int64))
    assert len(decoded) == len(samples)


def test_decoded_samples_are_writable_native_int64() -> None:
    decoded = decode_samples(encode_samples([1, 2, 3]))
    assert decoded.dtype == np.dtype(np.int64)
    decoded[0] = 9  # not a read-only view of the blob
    assert decoded.tolist() == [9, 2, 3]


def test_encoding_is_compact_for_realistic_latencies() -> None:
    rng = np.random.default_rng(42)
    samples = rng.normal(20 * NS_PER_MS, 1 * NS_PER_MS, size=1000).astype(np.int64)
    blob = encode_samples(samples)
    assert len(blob) < 8 * len(samples)
    np.testing.assert_array_equal(decode_samples(blob), samples)


@pytest.mark.parametrize(
    "blob",
    [b"", b"garbage", b"F2" + zlib.compress(b"\0" * 8)],
    ids=["empty", "no-tag", "wrong-version"],
)
def test_decode_of_unknown_encodings_raises_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        decode_samples(blob)


def test_decode_of_a_partial_sample_raises_value_error() -> None:
    with pytest.raises(ValueError):
        decode_samples(b"F1" + zlib.compress(b"\0" * 12))


@pytest.mark.parametrize(
    "blob",
    [b"F1", b"F1garbage", encode_samples([1, 2, 3])[:-3]],
    ids=["tag-only", "tag-then-garbage", "truncated"],
)
def test_decode_of_a_corrupt_body_raises_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        decode_samples(blob)


def test_pooled_equals_summary_of_the_concatenation() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(20 * NS_PER_MS, 2 * NS_PER_MS, size=500).astype(np.int64)
    b = rng.normal(35 * NS_PER_MS, 5 * NS_PER_MS, size=300).astype(np.int64)
    cell = pooled([encode_samples(a), encode_samples(b)])
    assert cell.pooled and summary_of(cell) == Summary.from_ns(np.concatenate([a, b]))
    assert cell.n == 800


def test_pooled_single_blob_equals_its_summary() -> None:
    cell = pooled([encode_samples(ONE_TO_HUNDRED_MS_NS)])
    assert summary_of(cell) == Summary.from_ns(ONE_TO_HUNDRED_MS_NS)


def test_pooled_is_not_the_average_of_percentiles() -> None:
    # 100 calls at 1 ms and 100 calls at 1..100 ms: averaging the two p99s gives ~50 ms,
    # the pooled p99 lies in the slow tail.
    fast = [1 * NS_PER_MS] * 100
    slow = ONE_TO_HUNDRED_MS_NS
    result = pooled([encode_samples(fast), encode_samples(slow)])
    averaged = (Summary.from_ns(fast).p99_ms + Summary.from_ns(slow).p99_ms) / 2
    expected = float(np.percentile(np.array(fast + slow) / NS_PER_MS, 99))
    assert result.p99_ms == pytest.approx(expected)
    assert result.p99_ms != pytest.approx(averaged)
    assert result.p99_ms > 95
    assert averaged < 51
    assert result.n == 200


def test_pooled_of_nothing_leaves_the_cell_unpooled() -> None:
    for blobs in ([], [encode_samples([])]):
        cell = pooled(blobs)
        assert not cell.pooled and cell.n is None and cell.p99_ms is None
