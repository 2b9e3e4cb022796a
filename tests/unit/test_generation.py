"""text-generation at submit: the task's dimensions, refusals, the capability table, and
its metrics from raw per-call samples. Classification specs are what they were."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from farm.backends import BACKENDS, EVERY_TASK, capability_refusal, validate_options
from farm.errors import MatrixError
from farm.generation import generation_stats, tpot_ns
from farm.jobs import TASKS, JobSpec, ModelSpec
from farm.matrix import parse_matrix
from farm.replicas import decoder_key, decoder_positions


def gen_matrix(**overrides: Any) -> dict[str, Any]:
    matrix: dict[str, Any] = {
        "name": "gen",
        "task": "text-generation",
        "models": [{"name": "gpt2", "layers": 1}],
        "prompt_tokens": [8],
        "new_tokens": [4],
        "batch_sizes": [1, 2],
        "backends": ["pytorch", {"name": "pytorch", "options": {"dtype": "bf16"}}],
        "pools": ["p"],
    }
    matrix.update(overrides)
    return {k: v for k, v in matrix.items() if v is not None}


def refusal(**overrides: Any) -> str:
    with pytest.raises(MatrixError) as err:
        parse_matrix(gen_matrix(**overrides))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_capability_table_is_one_column_of_the_backend_table() -> None:
    for name in ("pytorch", "ipex", "openvino", "torch-compile", "optimum-ipex", "selftest"):
        options = validate_options(name, {})
        for task in TASKS:
            assert capability_refusal(name, task, options) is None, (name, task)
    assert set(EVERY_TASK) == set(TASKS)


def _narrowed(monkeypatch: pytest.MonkeyPatch, name: str, tasks: dict[str, Any]) -> None:
    """The table with one row narrowed: how a backend without a task is refused."""
    monkeypatch.setitem(BACKENDS, name, dataclasses.replace(BACKENDS[name], tasks=tasks))


def test_a_backend_without_the_task_or_dtype_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _narrowed(monkeypatch, "openvino", {"text-classification": None})
    _narrowed(monkeypatch, "torch-compile", {"text-generation": ("fp32",)})
    bf16 = validate_options("torch-compile", {"dtype": "bf16"})
    assert capability_refusal("torch-compile", "text-generation", bf16) == (
        "backend torch-compile runs task text-generation in fp32 only, not bf16"
    )
    message = refusal(backends=["pytorch", "openvino"])
    assert "backends.1: backend openvino does not run task text-generation yet" in message


def test_ipex_generation_is_jit_traced_only() -> None:
    """IPEX's LLM path always traces for deployment: a result labelled `jit: false` would
    say what did not run, so the option is refused for the task (still free for encoders)."""
    untraced = validate_options("ipex", {"dtype": "fp32", "jit": False})
    assert capability_refusal("ipex", "text-classification", untraced) is None
    assert capability_refusal("ipex", "text-generation", untraced) == (
        "backend ipex runs task text-generation with jit: true only (ipex.llm.optimize traces "
        "the decoder for deployment itself where its LLM path has the model)"
    )
    message = refusal(backends=["pytorch", {"name": "ipex", "options": {"jit": False}}])
    assert "backends.1: backend ipex runs task text-generation with jit: true only" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"new_tokens": None}, "new_tokens: required for task text-generation"),
        ({"new_tokens": [0]}, "new_tokens.0: 0 new tokens: a generate call makes 1 to 4096"),
        ({"new_tokens": [4097]}, "new_tokens.0: 4097 new tokens: a generate call makes 1 to 4096"),
        ({"new_tokens": 4}, "new_tokens: Input should be a valid list"),
        ({"measure": "forward"}, "measure: forward does not apply to text-generation"),
        ({"inputs": {"a": "hello"}}, "inputs: leave it out with prompt_tokens"),
        ({"prompt_tokens": None}, "inputs: Field required"),
        ({"prompt_tokens": [1021]}, "models.0: gpt2 reads at most 1024 positions; "
                                    "prompt_tokens 1021 (1021 tokens) and 4 new tokens"),
        ({"prompt_tokens": None, "inputs": {"long": "é" * 511}},
         "input 'long' (1022 tokens) and 4 new tokens do not fit"),
        ({"instances": 2, "cores_per_instance": 1}, "throughput mode does not run"),
    ],
)
def test_generation_matrix_refusals(overrides: dict[str, Any], expected: str) -> None:
    assert expected in refusal(**overrides)


def test_a_prompt_that_fits_is_accepted_and_positions_are_per_replica() -> None:
    parse_matrix(gen_matrix(prompt_tokens=[1020]))  # 1020 + 4 = 1024 positions
    parse_matrix(gen_matrix(prompt_tokens=None, inputs={"a": "é" * 510}))  # 1020 bytes
    full_size = [{"name": "gpt2"}]  # may be a cached checkpoint: its worker counts
    parse_matrix(gen_matrix(models=full_size, prompt_tokens=None, inputs={"a": "x" * 5000}))
    smol = [{"name": "HuggingFaceTB/SmolLM2-135M", "layers": 1}]
    parse_matrix(gen_matrix(models=smol, prompt_tokens=[4000], new_tokens=[128]))
    assert decoder_positions("openai-community/gpt2") == 1024
    assert decoder_key("huggingfacetb/smollm2-135m") == "HuggingFaceTB/SmolLM2-135M"
    assert decoder_positions("distilbert-base-uncased") is None


def test_classification_refuses_generation_dimensions() -> None:
    base = {"name": "c", "models": ["distilbert-base-uncased"], "inputs": {"a": "hi"},
            "batch_sizes": [1], "backends": ["pytorch"], "pools": ["p"]}  # fmt: skip
    with pytest.raises(MatrixError, match="new_tokens: applies to task text-generation only"):
        parse_matrix({**base, "new_tokens": [4]})
    with pytest.raises(MatrixError, match="task"):
        parse_matrix({**base, "task": "summarization"})
    assert "new_tokens" not in parse_matrix(base).to_json()


def test_generation_jobs_carry_task_and_dimensions_in_their_identity() -> None:
    jobs = parse_matrix(gen_matrix(new_tokens=[4, 16], prompt_tokens=[8, 32])).expand()
    assert len(jobs) == 2 * 2 * 2 * 2
    assert {(j.input_name, j.prompt_tokens) for j in jobs} == {("prompt8", 8), ("prompt32", 32)}
    assert {j.new_tokens for j in jobs} == {4, 16}
    assert all(j.task == "text-generation" for j in jobs)
    assert len({j.cell_key() for j in jobs}) == len(jobs)
    again = JobSpec.from_json(jobs[0].to_json())
    assert again == jobs[0] and again.cell_key() == jobs[0].cell_key()
    # The same cell as classification is another cell.
    as_classification = jobs[0].model_copy(
        update={"task": "text-classification", "new_tokens": None, "prompt_tokens": None}
    )
    assert as_classification.cell_key() != jobs[0].cell_key()


def test_exclude_matches_new_tokens() -> None:
    jobs = parse_matrix(
        gen_matrix(new_tokens=[4, 16], exclude=[{"new_tokens": 16, "batch_size": 2}])
    ).expand()
    assert sorted((j.new_tokens, j.batch_size) for j in jobs) == [
        (4, 1), (4, 1), (4, 2), (4, 2), (16, 1), (16, 1)
    ]  # fmt: skip


def test_classification_spec_json_and_cell_key_are_unchanged() -> None:
    spec = JobSpec(model=ModelSpec(name="distilbert-base-uncased"), input_name="short",
                   input_text="hello", batch_size=8, backend="pytorch",
                   backend_options={"dtype": "fp32"}, pool="spr")  # fmt: skip
    assert "new_tokens" not in spec.to_json() and "prompt_tokens" not in spec.to_json()
    assert spec.cell_key() == "ac79ecafbfbcb7ec"  # as computed before generation existed


def test_generation_stats_from_per_call_samples() -> None:
    ms = 1_000_000
    samples = np.array([100, 110, 120, 130] * 25, dtype=np.int64) * ms
    ttft = np.array([10, 11, 12, 13] * 25, dtype=np.int64) * ms
    stats = generation_stats(samples, ttft, batch_size=2, new_tokens=10)
    assert stats["ttft_ms"] == pytest.approx(11.5)
    assert stats["ttft_p99_ms"] == pytest.approx(13.0)
    assert stats["tpot_ms"] == pytest.approx((115 - 11.5) / 9)
    assert stats["tpot_p99_ms"] == pytest.approx((130 - 13) / 9)
    assert stats["tokens_per_s"] == pytest.approx(2 * 10 / 0.115)
    assert tpot_ns(samples, ttft, 1) is None
    one = generation_stats(samples, ttft, batch_size=1, new_tokens=1)
    assert one["tpot_ms"] is None and one["tpot_p99_ms"] is None
    with pytest.raises(ValueError, match="one per call"):
        generation_stats(samples, ttft[:-1], batch_size=1, new_tokens=2)
