"""The encoder tasks' calls, shared by every backend: the text a model reads, the pipeline
that runs it, and what the output check reads back from each model call.

- fill-mask: Farm puts the tokenizer's mask token where the input says `{mask}`;
- question-answering: `input_text` is the question, `input_context` its context;
- feature-extraction: one embedding per text, sentence-transformers' mean pooling of the last
  hidden state over the attention mask (no normalisation: cosine does not see it).

Backends' outputs are read by field name (`out["logits"]`): a traced module's tuple or plain
dict is first mapped onto the task's ModelOutput (`output_mapper`). Heavy imports stay inside.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.jobs import JobSpec
from farm.taskinputs import MASK

Kwargs = dict[str, Any]
Reader = Callable[[Kwargs, Any], npt.NDArray[np.float32]]
# The fields of each task's ModelOutput the pipelines and the check read, in output order.
OUTPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "text-classification": ("SequenceClassifierOutput", ("logits",)),
    "token-classification": ("TokenClassifierOutput", ("logits",)),
    "question-answering": ("QuestionAnsweringModelOutput", ("start_logits", "end_logits")),
    "feature-extraction": ("BaseModelOutput", ("last_hidden_state",)),
    "fill-mask": ("MaskedLMOutput", ("logits",)),
}


def model_text(spec: JobSpec, tokenizer: Any) -> str:
    """The text the model reads: the input, with the mask token in place of `{mask}` for
    fill-mask (one line naming what is wrong when it cannot be)."""
    if spec.task != "fill-mask":
        return spec.input_text
    if MASK not in spec.input_text:
        raise ValueError(
            f"input {spec.input_name!r} has no {MASK} placeholder; fill-mask puts the model's "
            f"mask token there: write e.g. 'Paris is the {MASK} of France.'"
        )
    token = getattr(tokenizer, "mask_token", None)
    if not token:
        raise ValueError(
            f"the tokenizer of {spec.model.label} has no mask token; fill-mask needs a masked "
            "language model's tokenizer"
        )
    return spec.input_text.replace(MASK, str(token))


def task_tokens(tokenizer: Any, spec: JobSpec) -> int:
    """Tokens the model reads for one text, special tokens included (QA: the pair)."""
    if spec.task == "question-answering":
        return len(tokenizer(spec.input_text, spec.input_context)["input_ids"])
    return len(tokenizer(model_text(spec, tokenizer))["input_ids"])


def task_pipeline(task: str, model: Any, tokenizer: Any) -> Any:
    """The transformers pipeline of `task` on the CPU (feature-extraction: mean pooling)."""
    from transformers import pipeline

    make: Any = pipeline  # its overloads know no pipeline_class
    extra = {"pipeline_class": pooling_pipeline()} if task == "feature-extraction" else {}
    return make(task, model=model, tokenizer=tokenizer, device="cpu", **extra)


def mean_pool(hidden: Any, mask: Any) -> Any:
    """sentence-transformers' mean pooling: token embeddings averaged over the attention
    mask, in float32 whatever the backend's dtype (batch, hidden)."""
    hidden = hidden.float()
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


@functools.cache
def pooling_pipeline() -> type:
    """FeatureExtractionPipeline returning one pooled embedding per text (a list of floats)
    rather than every token's vector: pooled inside the forward, so a batch pools at once."""
    from transformers import FeatureExtractionPipeline

    class MeanPoolingPipeline(FeatureExtractionPipeline):
        def _forward(self, model_inputs: Any) -> Any:  # type: ignore[override]
            out = self.model(**model_inputs)
            hidden = out["last_hidden_state"] if isinstance(out, dict) else out[0]
            return {"embedding": mean_pool(hidden, model_inputs["attention_mask"])}

        def postprocess(self, model_outputs: Any, return_tensors: Any = False) -> Any:  # type: ignore[override]
            embedding = model_outputs["embedding"][0]
            return embedding if return_tensors else embedding.tolist()

    return MeanPoolingPipeline


def output_mapper(task: str) -> Callable[[Any], Any]:
    """Maps a model's output onto the task's ModelOutput: a tuple by position, a plain dict
    (a traced module's) by name; a ModelOutput is returned as it is."""
    from transformers import modeling_outputs
    from transformers.utils import ModelOutput

    cls_name, names = OUTPUTS[task]
    cls = getattr(modeling_outputs, cls_name)

    def mapped(out: Any) -> Any:
        if isinstance(out, ModelOutput):
            return out
        if isinstance(out, dict):
            return cls(**{name: out[name] for name in names})
        return cls(**dict(zip(names, out, strict=False)))

    return mapped


def output_reader(task: str, tokenizer: Any) -> Reader:
    """Per model call (its keyword inputs and output): the float32 array the output check
    compares, one row per text of the call —
    text/token-classification: logits (batch, [tokens,] labels); question-answering: start
    and end logits (batch, 2, tokens); fill-mask: logits at the mask positions (batch, masks,
    vocab); feature-extraction: the mean-pooled embedding (batch, hidden)."""

    def array(tensor: Any) -> npt.NDArray[np.float32]:
        return np.asarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)

    if task == "question-answering":
        return lambda kw, out: np.stack([array(out["start_logits"]), array(out["end_logits"])], 1)
    if task == "feature-extraction":
        return lambda kw, out: array(mean_pool(out["last_hidden_state"], kw["attention_mask"]))
    if task == "fill-mask":
        mask_id = tokenizer.mask_token_id

        def at_masks(kw: Kwargs, out: Any) -> npt.NDArray[np.float32]:
            logits, ids = array(out["logits"]), kw["input_ids"].cpu().numpy()
            # Copies of one text: every row has the same number of masks.
            return logits[ids == mask_id].reshape(len(ids), -1, logits.shape[-1])

        return at_masks
    return lambda kw, out: array(out["logits"])
