"""Published configurations of the decoder replicas Farm builds offline (text generation).

They live in the core, not the worker, so that `farm submit` knows each replica's positions
and refuses a prompt that cannot fit before anything is written. The worker builds the
architecture from them with random (seeded) weights: the same shapes, so the same cost.
"""

from __future__ import annotations

import json
from typing import Any

# config.json of each model as published on the hub, minus metadata.
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
