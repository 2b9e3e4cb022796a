"""The generation runner in-process: exactly new_tokens tokens per call, a TTFT stamp per
call, the teacher-forced check, the replicas' shapes and offline tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from farm.jobs import JobSpec, ModelSpec
from farm.protocol import Protocol
from farm.verdict import OUTPUT_TOLERANCE, check_reasons
from farm.workers.backends import get_backend
from farm.workers.backends.generate import GenerateRunner
from farm.workers.decoders import BYTE_TOKENIZER, load_decoder, prompt_ids
from farm.workers.gencheck import first_tokens, generation_check, generation_fields
from farm.workers.measure import measure

pytest.importorskip("torch")


def gen_spec(model: str = "gpt2", **update: object) -> JobSpec:
    spec = JobSpec(model=ModelSpec(name=model, layers=1), task="text-generation",
                   input_name="prompt8", input_text="<synthetic prompt of 8 tokens>",
                   batch_size=2, backend="pytorch", backend_options={"dtype": "fp32"},
                   pool="p", new_tokens=5, prompt_tokens=8)  # fmt: skip
    return spec.model_copy(update=update)


@pytest.mark.parametrize(
    ("model", "architecture", "positions"),
    [("openai-community/gpt2", "GPT2LMHeadModel", 1024),
     ("HuggingFaceTB/SmolLM2-135M", "LlamaForCausalLM", 8192)],
)  # fmt: skip
def test_replicas_are_built_offline_from_their_configs(
    model: str, architecture: str, positions: int
) -> None:
    loaded = load_decoder(ModelSpec(name=model, layers=1))
    identity = loaded.identity
    assert (identity["architecture"], identity["weights"]) == (architecture, "random")
    assert identity["config"]["layers"] == 1 and identity["config"]["positions"] == positions
    assert identity["tokenizer"] == BYTE_TOKENIZER
    assert len(prompt_ids(loaded.tokenizer, "hello", None)) == 5  # one token per byte
    assert len(prompt_ids(loaded.tokenizer, "", 37)) == 37


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_each_call_makes_exactly_new_tokens_and_stamps_its_first(dtype: str) -> None:
    spec = gen_spec(backend_options={"dtype": dtype}, protocol=Protocol(warmup=1, iterations=3))
    runner = get_backend("pytorch").load(spec)
    assert isinstance(runner, GenerateRunner)
    fn = runner.bind(spec)
    out = fn()
    assert tuple(out.shape) == (2, 8 + 5)  # no early stop: min = max new tokens
    fn.first_token_ns.clear()
    m = measure(fn, spec.protocol)
    ttft = first_tokens(fn, m.warmup_ns.size, m.samples_ns.size)
    assert ttft is not None and ttft.size == 3
    assert np.all(ttft > 0) and np.all(ttft < m.samples_ns)
    fields = generation_fields(spec, m.samples_ns, ttft)
    assert fields["ttft_ms"] == pytest.approx(ttft.mean() / 1e6)
    assert fields["tokens_per_s"] == pytest.approx(2 * 5 * 3 / (m.samples_ns.sum() / 1e9))
    check = generation_check({}, runner, spec)
    assert check["status"] == "checked" and check["tokens_checked"] == 10
    assert check["max_abs_logit_diff"] <= OUTPUT_TOLERANCE and not check_reasons(check)
    if dtype == "fp32":
        assert check["max_abs_logit_diff"] == 0.0 and check["token_agreement"] == 1.0
    else:
        assert check["max_abs_logit_diff"] > 0.0


def test_a_prompt_beyond_the_positions_fails_the_job_with_one_line() -> None:
    spec = gen_spec(prompt_tokens=None, input_name="long", input_text="x" * 1020, new_tokens=5)
    runner = get_backend("pytorch").load(spec)
    with pytest.raises(ValueError, match="1020 tokens; with 5 new tokens that is over the 1024"):
        runner.bind(spec)


def test_a_check_that_disagrees_is_a_reason() -> None:
    check = {"status": "checked", "max_abs_logit_diff": 0.2, "token_agreement": 0.5,
             "rows_checked": 1}  # fmt: skip
    assert check_reasons(check) == [
        "output check: logits differ from fp32 eager by up to 0.2 (tolerance 0.05); "
        "generated tokens agree on 50%"
    ]
