"""Text generation's timed call: one `generate` of exactly `new_tokens` new tokens.

Greedy, KV cache on, no early stop (min_new_tokens = max_new_tokens), the prompt repeated
`batch_size` times (identical rows: no padding). A streamer stamps the clock when
`generate` hands it the first new token (the prefill done and that token picked), so each
call also yields its time to first token (TTFT) at the cost of one call and one clock
reading per step (benchmarks/generation.py weighs it). Heavy imports stay inside.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from farm.jobs import JobSpec
from farm.workers.backends.base import Runner
from farm.workers.decoders import load_decoder, positions, prompt_ids
from farm.workers.models import LoadedModel


class FirstTokenStamp:
    """A streamer (`put`, `end`: all `generate` asks of one) keeping the clock's reading when
    the first new token arrives; `generate` puts the prompt first, which it skips."""

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.clock = clock
        self.first = 0
        self.puts = 0

    def reset(self) -> None:
        self.first = self.puts = 0

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:  # the first put is the prompt; the second, the first new token
            self.first = self.clock()

    def end(self) -> None:
        """Nothing to flush."""


class GenerateCall:
    """The zero-argument timed callable; `first_token_ns` gets each call's TTFT (0 if no
    new token came, which min_new_tokens >= 1 rules out)."""

    def __init__(self, generate: Callable[..., Any], inputs: dict[str, Any],
                 kwargs: dict[str, Any], context: Callable[[], Any]) -> None:  # fmt: skip
        self.stamp = FirstTokenStamp()
        self.first_token_ns: list[int] = []
        self._generate, self._inputs, self._context = generate, inputs, context
        self._kwargs = {**kwargs, "streamer": self.stamp}

    def __call__(self) -> Any:
        stamp = self.stamp
        stamp.reset()
        start = stamp.clock()
        with self._context():
            out = self._generate(**self._inputs, **self._kwargs)
        self.first_token_ns.append(stamp.first - start)
        return out


def generate_kwargs(spec: JobSpec, pad_token_id: int | None) -> dict[str, Any]:
    """Exactly new_tokens new tokens, greedy, KV cache on."""
    n = spec.new_tokens or 1
    return {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False, "num_beams": 1,
            "use_cache": True, "pad_token_id": pad_token_id}  # fmt: skip


def prefill_logits(hooked: Any, generate: Callable[..., Any], ids: Any, **extra: Any) -> Any:
    """Logits (or hidden states: whatever `hooked` returns first) of every position of `ids`
    from a backend's own prefill: a one-token greedy `generate` on `ids`, the first output of
    the module `hooked` recorded. For backends whose
    bare forward is not a call they support (IPEX's traced graph takes its own cache layout;
    optimum-intel's paged model keeps state a cacheless forward corrupts)."""
    outputs: list[Any] = []
    hook = hooked.register_forward_hook(lambda _module, _args, out: outputs.append(out))
    try:
        generate(input_ids=ids, attention_mask=ids.new_ones(ids.shape), max_new_tokens=1,
                 min_new_tokens=1, do_sample=False, num_beams=1, use_cache=True,
                 **extra)  # fmt: skip
    finally:
        hook.remove()
    first = outputs[0]
    for key in ("logits", "last_hidden_state"):
        if hasattr(first, key):
            return getattr(first, key)
    return first[0]


class GenerateRunner(Runner):
    """`pytorch` for text-generation: the causal LM in fp32, or under bf16 CPU autocast.

    The optimising backends subclass it (workers/backends/generate_*.py): `optimise` builds
    their model at setup and returns what the identity records, `backend_generate` and
    `backend_logits` run it. `self.model` stays the fp32 eager model: the check's reference.
    """

    backend_name = ""  # "": pytorch itself, whose identity has no backend section
    warm_in_bind = False  # a backend that compiles or traces warms in bind, untimed

    def __init__(self, spec: JobSpec) -> None:
        import torch

        loaded = load_decoder(spec.model)
        self.identity = loaded.identity
        self.tokenizer = loaded.tokenizer
        self.model = loaded.model
        self._torch = torch
        self.options = dict(spec.backend_options)
        self._bf16 = self.options.get("dtype") == "bf16"
        self.reference_is_backend = not self._bf16 and not self.backend_name
        config = self.model.config
        self.pad_token_id = config.pad_token_id if config.pad_token_id is not None else (
            config.eos_token_id if isinstance(config.eos_token_id, int) else 0)  # fmt: skip
        if self.backend_name:
            details = self.optimise(spec, loaded)
            self.identity = {**self.identity, "backend": {"name": self.backend_name, **details}}

    # --- what an optimising backend provides -------------------------------------------

    def optimise(self, spec: JobSpec, loaded: LoadedModel) -> dict[str, Any]:
        """Build the backend's model (setup, not timed); return details for the identity."""
        raise NotImplementedError

    def backend_generate(self, **kwargs: Any) -> Any:
        """One `generate` through the backend: (batch, prompt + new tokens) token ids."""
        return self.model.generate(**kwargs)

    def backend_logits(self, ids: Any) -> Any:
        """The backend's logits for every position of `ids` (no cache): (batch, len, vocab)."""
        return self.model(input_ids=ids, attention_mask=self._torch.ones_like(ids)).logits

    def context(self) -> contextlib.AbstractContextManager[Any]:
        """Entered around each backend call: bf16 CPU autocast when the job asks for it."""
        if self._bf16:
            return self._torch.autocast("cpu", dtype=self._torch.bfloat16)
        return contextlib.nullcontext()

    # --- shared -----------------------------------------------------------------------

    def prompt(self, spec: JobSpec) -> list[int]:
        ids = prompt_ids(self.tokenizer, spec.input_text, spec.prompt_tokens)
        limit = positions(self.model)
        if limit is not None and len(ids) + (spec.new_tokens or 0) > limit:
            raise ValueError(
                f"input {spec.input_name!r} is {len(ids)} tokens; with {spec.new_tokens} new "
                f"tokens that is over the {limit} positions {spec.model.label} reads (shorten "
                "the prompt or new_tokens)"
            )
        return ids

    def inputs(self, spec: JobSpec) -> dict[str, Any]:
        torch = self._torch
        ids = torch.tensor([self.prompt(spec)] * spec.batch_size, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def bind(self, spec: JobSpec) -> GenerateCall:
        no_grad, generate = self._torch.no_grad, self.backend_generate

        def call(**kwargs: Any) -> Any:
            with no_grad():
                return generate(**kwargs)

        fn = GenerateCall(
            call, self.inputs(spec), generate_kwargs(spec, self.pad_token_id), self.context
        )
        if self.warm_in_bind:  # compilation / tracing / first inference of these shapes
            fn()
            fn.first_token_ns.clear()
        return fn

    def continuation(self, spec: JobSpec, reference: bool) -> Any:
        """The whole sequence (prompt + new tokens) that greedy generation gives, fp32 eager
        (reference) or this backend's: (batch_size, prompt + new_tokens)."""
        kwargs = {**self.inputs(spec), **generate_kwargs(spec, self.pad_token_id)}
        with self._torch.no_grad():
            if reference:
                return self.model.generate(**kwargs)
            with self.context():
                return self.backend_generate(**kwargs)

    def teacher_forced(self, spec: JobSpec, sequence: Any, reference: bool) -> Any:
        """Logits predicting each new token of `sequence`, fed the sequence itself (teacher
        forcing): float32 (batch_size, new_tokens, vocab)."""
        n = spec.new_tokens or 1
        ids = sequence[:, :-1]
        with self._torch.no_grad():
            if reference:
                logits = self.model(input_ids=ids, attention_mask=self._torch.ones_like(ids)).logits
            else:
                with self.context():
                    logits = self.backend_logits(ids)
        return logits[:, -n:, :].float().numpy()
