"""Published configurations of the replicas Farm builds offline: encoders and decoders.

They live in the core, not the worker, so that `farm submit` knows what each replica can do
(its tasks, a decoder's positions) and refuses what cannot run before anything is written.
The worker builds the architecture from them with random (seeded) weights: the same shapes,
so the same cost.
"""

from __future__ import annotations

import json
from typing import Any

# Encoders: config.json of each model as published on the hub, minus metadata (heads and
# labels are the worker's: random weights, so a head is as good as the task asks).
_DISTILBERT = (
    '{"model_type": "distilbert", "vocab_size": 30522, "dim": 768,'
    ' "n_layers": 6, "n_heads": 12, "hidden_dim": 3072, "max_position_embeddings": 512,'
    ' "activation": "gelu", "dropout": 0.1, "attention_dropout": 0.1, "qa_dropout": 0.1,'
    ' "seq_classif_dropout": 0.2, "initializer_range": 0.02, "sinusoidal_pos_embds": false,'
    ' "pad_token_id": 0}'
)
_BERT = (
    '{"model_type": "bert", "vocab_size": 30522, "hidden_size": 768,'
    ' "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,'
    ' "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",'
    ' "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,'
    ' "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,'
    ' "position_embedding_type": "absolute"}'
)
ENCODERS: dict[str, dict[str, Any]] = {
    key: json.loads(text)
    for key, text in {
        "distilbert-base-uncased": _DISTILBERT,
        "bert-base-uncased": _BERT,
        "roberta-base": '{"model_type": "roberta", "vocab_size": 50265, "hidden_size": 768,'
        ' "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,'
        ' "max_position_embeddings": 514, "type_vocab_size": 1, "hidden_act": "gelu",'
        ' "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,'
        ' "initializer_range": 0.02, "layer_norm_eps": 1e-05, "pad_token_id": 1,'
        ' "bos_token_id": 0, "eos_token_id": 2}',
        # BertForTokenClassification, CoNLL-2003 labels (ENCODER_LABELS).
        "dslim/bert-base-NER-uncased": _BERT,
        # DistilBertForQuestionAnswering.
        "distilbert-base-uncased-distilled-squad": _DISTILBERT,
    }.items()
}
ENCODER_ALIASES = {
    "distilbert/distilbert-base-uncased": "distilbert-base-uncased",
    "google-bert/bert-base-uncased": "bert-base-uncased",
    "FacebookAI/roberta-base": "roberta-base",
    "distilbert/distilbert-base-uncased-distilled-squad": "distilbert-base-uncased-distilled-squad",
}
# Published label sets of the replicas whose checkpoints have a labelled head.
ENCODER_LABELS: dict[str, dict[int, str]] = {
    "dslim/bert-base-NER-uncased": dict(
        enumerate(["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"])
    ),
}
# What an encoder body can be asked (a random head where its checkpoint has none) and what a
# decoder can: a replica is refused at submit for any other task.
ENCODER_TASKS = ("text-classification", "token-classification", "question-answering",
                 "feature-extraction", "fill-mask")  # fmt: skip
DECODER_TASKS = ("text-generation",)

# Decoders: config.json of each model as published on the hub, minus metadata.
DECODERS: dict[str, dict[str, Any]] = {
    key: json.loads(text)
    for key, text in {
        "gpt2": '{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,'
        ' "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": null,'
        ' "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,'
        ' "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-05, "initializer_range": 0.02,'
        ' "bos_token_id": 50256, "eos_token_id": 50256}',
        "HuggingFaceTB/SmolLM2-135M": '{"model_type": "llama", "vocab_size": 49152,'
        ' "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,'
        ' "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_act": "silu",'
        ' "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000,'
        ' "rope_scaling": null, "attention_bias": false, "attention_dropout": 0.0,'
        ' "initializer_range": 0.041666666666666664, "tie_word_embeddings": true,'
        ' "bos_token_id": 0, "eos_token_id": 0, "pretraining_tp": 1}',
    }.items()
}
DECODER_ALIASES = {"openai-community/gpt2": "gpt2"}
# The config key holding the layer count, for the `layers` override.
LAYERS_KEY = {"gpt2": "n_layer", "llama": "num_hidden_layers"}


def decoder_key(name: str) -> str | None:
    """The decoder replica `name` names (hub ids are case-insensitive), or None."""
    aliases = {**{k: k for k in DECODERS}, **DECODER_ALIASES}
    return {alias.lower(): key for alias, key in aliases.items()}.get(name.lower())


def decoder_positions(name: str) -> int | None:
    """How many positions (prompt + new tokens) the replica `name` reads, or None."""
    key = decoder_key(name)
    if key is None:
        return None
    config = DECODERS[key]
    return int(config.get("n_positions") or config["max_position_embeddings"])


def encoder_key(name: str) -> str | None:
    """The encoder replica `name` names (hub ids are case-insensitive), or None."""
    aliases = {**{k: k for k in ENCODERS}, **ENCODER_ALIASES}
    return {alias.lower(): key for alias, key in aliases.items()}.get(name.lower())


def replica_tasks(name: str) -> tuple[str, ...] | None:
    """The tasks the replica `name` can run, or None when `name` is no replica of Farm's."""
    if encoder_key(name) is not None:
        return ENCODER_TASKS
    if decoder_key(name) is not None:
        return DECODER_TASKS
    return None
