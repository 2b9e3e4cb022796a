"""Efficiency: the FLOP formula against torch's flop counter on the replicas, the arithmetic
of GFLOP/s and % of peak, null without a peak, the peak request and its use case."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

from farm.app.calibrate import calibrate_peak
from farm.errors import FarmError
from farm.flops import (
    EncoderShape,
    compute_dtype,
    efficiency,
    encoder_shape,
    flops_per_call,
    flops_per_sequence,
    gflops,
    peak_for,
    peak_matches,
    percent_of_peak,
)
from farm.jobs import direct_queue
from farm.reports.cells import Cell, set_pooled
from farm.reports.text import metric_text
from farm.settings import Settings, parse_sizes
from tests.support.broker import MemoryBroker
from tests.support.harness import LONG, SHORT

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BERT = EncoderShape("bert", layers=12, hidden=768, heads=12, intermediate=3072, labels=2)
PEAK = {"fp32_gflops": 200.0, "bf16_gflops": 800.0, "hostname": "h", "cpus": "0,1", "threads": 2}


# --- the formula against torch.utils.flop_counter ----------------------------------------


def _counted_flops(model: Any, encoded: dict[str, Any]) -> int:
    """torch's count of one forward; CPU flash attention is counted as torch counts SDPA."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(q: Any, k: Any, v: Any, *_: Any, out_shape: Any = None, **__: Any) -> int:
        return int(sdpa_flop_count(q, k, v))

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    mapping = {op: cpu_sdpa} if op is not None else {}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(**encoded)
    return int(counter.get_total_flops())


@pytest.mark.parametrize(
    "name", ["distilbert-base-uncased", "bert-base-uncased", "roberta-base", "all-MiniLM-L6-v2"]
)
def test_formula_matches_torch_flop_counter_within_5_percent(name: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from farm.jobs import ModelSpec
    from farm.workers.models import count_tokens, load_model

    spec = ModelSpec(name=name) if "MiniLM" in name else ModelSpec(name=name, layers=2)
    loaded = load_model(spec)
    shape = EncoderShape(**loaded.identity["shape"])
    assert shape.layers == (6 if "MiniLM" in name else 2)
    for text, batch in ((SHORT, 1), (LONG, 1), (SHORT, 4)):
        encoded = loaded.tokenizer([text] * batch, return_tensors="pt", padding=True)
        counted = _counted_flops(loaded.model, encoded)
        formula = flops_per_call(shape, count_tokens(loaded.tokenizer, text), batch)
        assert counted > 0
        assert abs(formula - counted) / counted <= 0.05, (name, batch, formula, counted)


# --- the formula and the arithmetic --------------------------------------------------------


def test_formula_by_hand_for_bert_base() -> None:
    # 18 tokens: per layer 8·S·H² + 4·S²·H + 4·S·H·I, head 2·H² + 2·H·labels.
    s, h, i = 18, 768, 3072
    expected = 12 * (8 * s * h * h + 4 * s * s * h + 4 * s * h * i) + 2 * h * h + 2 * h * 2
    assert flops_per_sequence(BERT, 18) == expected
    assert flops_per_call(BERT, 18, 8) == 8 * expected  # sequential or batched: N × one


def test_shape_from_config_families_and_unknown() -> None:
    distil = {"model_type": "distilbert", "n_layers": 6, "dim": 768, "n_heads": 12,
              "hidden_dim": 3072, "id2label": {0: "N", 1: "P"}}  # fmt: skip
    assert encoder_shape(distil) == EncoderShape("distilbert", 6, 768, 12, 3072, 2)
    roberta = {"model_type": "roberta", "num_hidden_layers": 12, "hidden_size": 768,
               "num_attention_heads": 12, "intermediate_size": 3072, "num_labels": 3}  # fmt: skip
    assert encoder_shape(roberta) == EncoderShape("roberta", 12, 768, 12, 3072, 3)
    assert encoder_shape({"model_type": "gpt2", "n_layer": 12}) is None
    assert encoder_shape({"model_type": "bert"}) is None  # incomplete: no formula


def test_gflops_and_percent_of_peak() -> None:
    assert gflops(2e9, 10.0) == pytest.approx(200.0)  # 2 GFLOP in 10 ms
    assert percent_of_peak(200.0, 800.0) == pytest.approx(25.0)
    assert gflops(2e9, 0.0) is None and gflops(None, 10.0) is None
    assert percent_of_peak(200.0, None) is None


def test_efficiency_reads_the_peak_of_the_backends_precision() -> None:
    tokens, batch = 18, 2
    flops = flops_per_call(BERT, tokens, batch)
    fp32 = efficiency(BERT, tokens, batch, 10.0, "fp32", PEAK)
    assert fp32.flops == flops and fp32.gflops == pytest.approx(flops / 1e7)
    assert fp32.peak_gflops == 200.0
    assert fp32.percent == pytest.approx(100 * flops / 1e7 / 200.0)
    bf16 = efficiency(BERT, tokens, batch, 10.0, "bf16", PEAK)
    assert bf16.percent == pytest.approx(fp32.percent / 4)


def test_efficiency_is_null_without_a_peak_or_a_formula() -> None:
    none = efficiency(BERT, 18, 1, 10.0, "fp32", None)
    assert none.gflops is not None and none.percent is None and none.peak_gflops is None
    assert none.note == "no peak measured here"
    no_bf16 = efficiency(BERT, 18, 1, 10.0, "bf16", {**PEAK, "bf16_gflops": None})
    assert no_bf16.percent is None and no_bf16.note == "no bf16 peak measured here"
    unknown = efficiency(None, 18, 1, 10.0, "fp32", PEAK)
    assert unknown.flops is None and unknown.gflops is None and unknown.percent is None


@pytest.mark.parametrize(
    ("options", "backend", "dtype"),
    [
        ({"dtype": "fp32"}, None, "fp32"),
        ({"dtype": "bf16", "jit": True}, None, "bf16"),
        ({"inference_precision_hint": "bf16"}, None, "bf16"),
        # OpenVINO asked bf16 on a CPU without it and compiled f32: f32 is what it computed in.
        ({"inference_precision_hint": "bf16"},
         {"compiled_properties": {"INFERENCE_PRECISION_HINT": "f32"}}, "fp32"),  # fmt: skip
        ({"work_ms": 1.0}, None, "fp32"),
    ],
)
def test_compute_dtype(options: dict[str, Any], backend: dict[str, Any] | None, dtype: str) -> None:
    assert compute_dtype(options, backend) == dtype


def test_a_peak_holds_only_for_its_host_cpus_and_threads() -> None:
    assert peak_matches(PEAK, "h", "0,1", 2)
    assert not peak_matches(PEAK, "h", "0", 2)
    assert not peak_matches(PEAK, "h", "0,1", 1)
    assert not peak_matches(PEAK, "other", "0,1", 2)
    assert not peak_matches(None, "h", "0,1", 2)
    assert peak_for(PEAK, "bf16") == 800.0 and peak_for({"bf16_gflops": None}, "bf16") is None


# --- cells and their text ------------------------------------------------------------------


def _cell(**kw: Any) -> Cell:
    base: dict[str, Any] = dict(model="m", input="short", batch_size=1, batching="sequential",
                                backend="pytorch", backend_options={}, pool="p", results=1)
    return Cell(**(base | kw))  # fmt: skip


def test_cell_efficiency_follows_its_pooled_mean() -> None:
    import numpy as np

    cell = _cell(flops=4e9, peak_gflops=400.0, mean_ms=20.0, results=2)
    assert cell.value("gflops") == pytest.approx(200.0)
    assert cell.value("efficiency") == pytest.approx(50.0)
    set_pooled(cell, np.array([5.0, 15.0, 10.0, 10.0]))  # pooled mean 10 ms
    assert cell.value("gflops") == pytest.approx(400.0)
    assert cell.value("efficiency") == pytest.approx(100.0)


def test_efficiency_text_shows_gflops_and_percent_or_no_peak() -> None:
    assert metric_text(_cell(flops=4e9, peak_gflops=400.0, mean_ms=20.0), "efficiency") == (
        "200.0 GFLOP/s (50.0 %)"
    )
    assert metric_text(_cell(flops=4e9, mean_ms=20.0), "efficiency") == "200.0 GFLOP/s (no peak)"
    assert metric_text(_cell(mean_ms=20.0), "efficiency") == "-"
    assert metric_text(_cell(mean_ms=20.0), "mean") == "20.00"


# --- the peak: settings, measurement, request ------------------------------------------------


def test_peak_sizes_setting() -> None:
    env = {"FARM_PEAK_SIZES": "64,128", "FARM_PEAK_REPEATS": "2"}
    settings = Settings.from_env(env)
    assert settings.peak_sizes == (64, 128) and settings.peak_repeats == 2
    assert Settings.from_env({}).peak_sizes == (512, 1024, 2048)
    for bad in ("", "x", "4", "64,99999"):
        with pytest.raises(ValueError, match="bad matrix sizes"):
            parse_sizes(bad)


def test_gemm_peak_small_sizes_and_bf16_only_where_native() -> None:
    pytest.importorskip("torch")
    from farm.workers.peak import measure_peak, valid_request

    avx2 = measure_peak({"avx2": True}, [32, 64], 1)
    assert avx2["fp32_gflops"] > 0 and set(avx2["by_size"]["fp32"]) == {"32", "64"}
    assert avx2["bf16_gflops"] is None and "not native" in avx2["bf16"]
    assert avx2["fp32_gflops"] == max(avx2["by_size"]["fp32"].values())
    bf16 = measure_peak({"avx512_bf16": True}, [32], 1)
    assert bf16["bf16_gflops"] > 0 and bf16["bf16"] is None
    assert valid_request([64], 1) is None
    for sizes, repeats in (([], 1), ([4], 1), (["64"], 1), ([64], 0), ([64], True), ("64", 1)):
        assert valid_request(sizes, repeats) is not None


class _Workers:
    """The campaign store's live_workers; a worker answers the request `answer` times later."""

    def __init__(self, broker: MemoryBroker, names: list[str], silent: set[str]) -> None:
        self.broker, self.names, self.silent = broker, names, silent

    def live_workers(self, ttl_s: int) -> list[Any]:
        answered = {q.removeprefix("farm.worker."): r for q, r, _, _ in self.broker.peak_requests}
        rows = []
        for name in self.names:
            request = answered.get(name) if name not in self.silent else None
            peak = {"fp32_gflops": 100.0, "request": request} if request else None
            rows.append(SimpleNamespace(name=name, pool="p", hostname="h", peak=peak))
        return rows + [SimpleNamespace(name="q1", pool="q", hostname="h", peak=None)]


def test_calibrate_peak_asks_each_worker_of_the_pool_and_waits_for_its_own_request() -> None:
    broker = MemoryBroker()
    store: Any = _Workers(broker, ["w1", "w2"], silent=set())
    got = calibrate_peak(store, broker, "p", sizes=[64], repeats=1, timeout=5, worker_ttl_s=60)
    assert [(h.worker, (h.peak or {}).get("fp32_gflops")) for h in got] == [
        ("w1", 100.0),
        ("w2", 100.0),
    ]
    queues = sorted(q for q, _, _, _ in broker.peak_requests)
    assert queues == [direct_queue("w1"), direct_queue("w2")]
    assert all(s == [64] and r == 1 for _, _, s, r in broker.peak_requests)


def test_calibrate_peak_reports_workers_that_do_not_answer_and_refuses_an_empty_pool() -> None:
    broker = MemoryBroker()
    store: Any = _Workers(broker, ["w1", "w2"], silent={"w2"})
    got = calibrate_peak(store, broker, "p", sizes=[64], repeats=1, timeout=0.1,
                         worker_ttl_s=60, sleep=lambda _: None)  # fmt: skip
    assert {h.worker: h.peak is not None for h in got} == {"w1": True, "w2": False}
    with pytest.raises(FarmError, match="no live worker in pool 'z'"):
        calibrate_peak(store, broker, "z", sizes=[64], repeats=1, timeout=1, worker_ttl_s=60)
