"""Which class holds a model for each encoder task, in transformers and in each optimum path.

One table, so every source of a model (local directory, packaged MiniLM, HF cache, replica)
and every backend that wraps its own classes (OpenVINO, optimum-ipex) resolves a task the
same way. The classes are named, not imported: the laptop imports this module without torch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from farm.errors import ModelResolutionError
from farm.replicas import ENCODER_LABELS, ENCODER_TASKS

# The two labels every replica or MiniLM classification head gets when its checkpoint
# publishes none (random weights: the names only make the pipeline's output readable).
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
# Tasks whose head has one logit per label (the others' heads have fixed shapes).
LABELLED = ("text-classification", "token-classification")


class TaskClasses(NamedTuple):
    """The class names of one task: transformers', optimum-intel 2's OpenVINO one, and
    optimum-intel 1.27's IPEX one."""

    auto: str
    openvino: str
    optimum_ipex: str


TASK_CLASSES: dict[str, TaskClasses] = {
    "text-classification": TaskClasses("AutoModelForSequenceClassification",
                                       "OVModelForSequenceClassification",
                                       "IPEXModelForSequenceClassification"),
    "token-classification": TaskClasses("AutoModelForTokenClassification",
                                        "OVModelForTokenClassification",
                                        "IPEXModelForTokenClassification"),
    "question-answering": TaskClasses("AutoModelForQuestionAnswering",
                                      "OVModelForQuestionAnswering",
                                      "IPEXModelForQuestionAnswering"),
    # The bare encoder: its last hidden state is what Farm mean-pools into an embedding.
    "feature-extraction": TaskClasses("AutoModel", "OVModelForFeatureExtraction", "IPEXModel"),
    "fill-mask": TaskClasses("AutoModelForMaskedLM", "OVModelForMaskedLM", "IPEXModelForMaskedLM"),
}  # fmt: skip
assert set(TASK_CLASSES) == set(ENCODER_TASKS)


def task_classes(task: str) -> TaskClasses:
    """The task's classes, or one line saying which tasks an encoder runs."""
    found = TASK_CLASSES.get(task)
    if found is None:
        raise ModelResolutionError(
            f"task {task!r} is not an encoder task; encoders run: {', '.join(TASK_CLASSES)}"
        )
    return found


def auto_class(task: str) -> Any:
    """The transformers Auto class that loads a model for `task` (imports transformers)."""
    import transformers

    return getattr(transformers, task_classes(task).auto)


def optimum_class(task: str, path: str) -> Any:
    """optimum.intel's class for `task` on `path` ("openvino" or "optimum_ipex")."""
    import optimum.intel

    return getattr(optimum.intel, getattr(task_classes(task), path))


def head_labels(replica: str | None, task: str) -> dict[str, Any]:
    """The config keyword arguments naming the labels of a new head: a replica of a
    checkpoint with a labelled head gets its published labels (ENCODER_LABELS), any other
    labelled head LABELS; heads without labels (QA, MLM, none) get nothing."""
    if task not in LABELLED:
        return {}
    labels = ENCODER_LABELS.get(replica or "", LABELS)
    return {"num_labels": len(labels), "id2label": dict(labels),
            "label2id": {v: k for k, v in labels.items()}}  # fmt: skip
