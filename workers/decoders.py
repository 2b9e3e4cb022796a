"""Resolve a ModelSpec to a causal language model for text generation, fully offline.

A model comes from a local directory, the local Hugging Face cache, or — for the decoders
whose published configurations Farm ships (farm.replicas: gpt2, SmolLM2-135M) — a replica
with random (seeded) weights: the same shapes, so the same cost per token. No BPE vocabulary
of theirs is available offline, so replicas use BYTE_TOKENIZER, built here: one token per
UTF-8 byte (a prompt of N ASCII characters is N tokens); reports name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from farm.errors import ModelResolutionError
from farm.jobs import ModelSpec
from farm.modelpaths import outside_roots
from farm.replicas import DECODERS, LAYERS_KEY, decoder_key
from farm.settings import model_roots
from farm.workers.models import LoadedModel, cached_config, finish, random_model

BYTE_TOKENIZER = "byte-level (256 byte tokens, no merges; built offline by Farm)"
END_OF_TEXT = "<|endoftext|>"
# The text synthetic prompts are cut from (any tokenizer: encode, repeat, cut to N tokens).
PROMPT_TEXT = (
    "Farm measures transformer inference on CPUs, one cell of the matrix at a time, and "
    "keeps every raw sample so that any statistic can be computed again later. "
)


def load_decoder(spec: ModelSpec) -> LoadedModel:
    """A causal LM for `spec`: local dir, HF cache, then a decoder replica."""
    name = spec.name
    key = decoder_key(name)
    if key is None and spec.layers is not None:
        raise ModelResolutionError(
            f"layers applies only to replicas of {', '.join(DECODERS)}; {name!r} is not one"
        )
    if outside_roots(name, model_roots()):
        raise ModelResolutionError(
            f"model path {name!r} is outside the allowed model roots; set FARM_MODEL_ROOTS "
            "on the worker to allow it"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return _pretrained(spec, str(path.resolve()), "local")
    if spec.layers is None:  # a real checkpoint beats a replica when one is cached
        for candidate in dict.fromkeys([name, *([key] if key else [])]):
            if cached_config(candidate) is not None:
                return _pretrained(spec, candidate, "hf-cache")
    if key is not None:
        return _build_replica(spec, key)
    raise ModelResolutionError(
        f"model {name!r} is not available offline for text-generation; use a local model "
        f"directory, a model in the local Hugging Face cache (HF_HOME), or a replica of one "
        f"of: {', '.join(DECODERS)}"
    )


def byte_tokenizer() -> Any:
    """One token per byte (ids 0-255, byte-level alphabet), end of text 256, left padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT, padding_side="left"
    )
    tokenizer.model_max_length = 1_000_000_000_000_000_019_884_624_838_656  # HF's "no limit"
    return tokenizer


def _build_replica(spec: ModelSpec, key: str) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    params = dict(DECODERS[key])
    if spec.layers is not None:
        params[LAYERS_KEY[params["model_type"]]] = spec.layers
    config = AutoConfig.for_model(**params)
    model, summary = random_model(AutoModelForCausalLM, config)
    summary["positions"] = int(params.get("n_positions") or params["max_position_embeddings"])
    found: dict[str, Any] = {"source": "replica", "weights": "random", "revision": None}
    found |= {"tokenizer": BYTE_TOKENIZER, "config": summary}
    return finish(model, byte_tokenizer(), spec, found)


def _pretrained(spec: ModelSpec, source: str, kind: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trust = spec.trust_remote_code
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=True, trust_remote_code=trust
        )
        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=True, trust_remote_code=trust
        )
    except (OSError, ValueError) as exc:
        raise ModelResolutionError(f"cannot load {kind} model {spec.name!r}: {exc}") from exc
    found: dict[str, Any] = {"source": kind, "weights": "pretrained", "revision": None,
                             "tokenizer": f"{tokenizer.name_or_path} ({type(tokenizer).__name__})",
                             "config": None}  # fmt: skip
    return finish(model, tokenizer, spec, found)


def positions(model: Any) -> int | None:
    """How many positions (prompt + new tokens) the model reads, when its config says."""
    config = model.config
    found = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    return int(found) if found else None


def prompt_ids(tokenizer: Any, text: str, tokens: int | None) -> list[int]:
    """The prompt's token ids: `text` as the tokenizer reads it, or — with `tokens` — a
    synthetic prompt of exactly that many tokens cut from PROMPT_TEXT repeated."""
    if tokens is None:
        return list(tokenizer(text)["input_ids"])
    unit = list(tokenizer(PROMPT_TEXT, add_special_tokens=False)["input_ids"])
    head = list(tokenizer("", add_special_tokens=True)["input_ids"])  # a BOS, if it adds one
    ids = head + unit * (tokens // max(len(unit), 1) + 1)
    return ids[:tokens]
