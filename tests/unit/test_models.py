"""workers.models really loads models offline: replicas, the packaged MiniLM, local dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from farm.errors import ModelResolutionError  # noqa: E402
from farm.jobs import ModelSpec  # noqa: E402
from farm.workers.models import LoadedModel, count_tokens, load_model  # noqa: E402
from tests.support.harness import LONG, SHORT  # noqa: E402

REPLICAS = ["distilbert-base-uncased", "bert-base-uncased", "roberta-base"]
KEYS = {
    "name",
    "source",
    "weights",
    "weights_sha256",
    "revision",
    "tokenizer",
    "architecture",
    "config",
    "num_parameters",
    "trust_remote_code",
    "shape",
}


def tiny(name: str, layers: int = 2) -> LoadedModel:
    return load_model(ModelSpec(name=name, layers=layers))


def test_count_tokens_matches_the_blog() -> None:
    tokenizer = tiny("bert-base-uncased", 1).tokenizer
    assert count_tokens(tokenizer, SHORT) == 18
    assert count_tokens(tokenizer, LONG) == 151


@pytest.mark.parametrize("name", REPLICAS)
def test_replica_loads_and_runs_a_padded_batch(name: str) -> None:
    loaded = tiny(name)
    ident = loaded.identity
    assert set(ident) == KEYS
    json.dumps(ident)  # recorded with every result
    assert ident["source"] == "replica" and ident["weights"] == "random"
    assert ident["config"]["layers"] == 2 and ident["config"]["hidden_size"] == 768
    assert ident["trust_remote_code"] is False and len(ident["weights_sha256"]) == 64
    model = loaded.model
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    batch = loaded.tokenizer([SHORT, LONG], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] == 151  # really padded
    with torch.inference_mode():
        logits = model(**batch).logits
        alone = model(**loaded.tokenizer(SHORT, return_tensors="pt")).logits
    assert logits.shape == (2, 2)
    # Padding must not change the padded row's result (RoBERTa's position ids included).
    torch.testing.assert_close(logits[0], alone[0], atol=1e-4, rtol=1e-4)


def test_roberta_replica_is_labelled_with_its_substitute_tokenizer() -> None:
    ident = tiny("FacebookAI/roberta-base").identity
    assert "substitute" in ident["tokenizer"]
    assert ident["config"]["vocab_size"] == 50265
    assert ident["architecture"] == "RobertaForSequenceClassification"


def test_replica_weights_are_deterministic_and_distinct() -> None:
    state = torch.get_rng_state()
    first, second = tiny("bert-base-uncased"), tiny("google-bert/bert-base-uncased")
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left alone
    assert first.identity["weights_sha256"] == second.identity["weights_sha256"]
    assert (
        first.identity["weights_sha256"]
        != tiny("distilbert-base-uncased").identity["weights_sha256"]
    )
    assert (
        first.identity["weights_sha256"] != tiny("bert-base-uncased", 1).identity["weights_sha256"]
    )


def test_packaged_minilm_loads() -> None:
    loaded = load_model(ModelSpec(name="sentence-transformers/all-MiniLM-L6-v2"))
    ident = loaded.identity
    assert ident["source"] == "package"
    assert ident["weights"] == "pretrained-encoder, random head"
    assert ident["architecture"] == "BertForSequenceClassification"
    assert count_tokens(loaded.tokenizer, SHORT) == 18
    again = load_model(ModelSpec(name="all-MiniLM-L6-v2")).identity
    assert again["weights_sha256"] == ident["weights_sha256"]  # seeded head


def test_unknown_model_is_named_in_the_error() -> None:
    with pytest.raises(ModelResolutionError, match="no-such-org/no-such-model") as err:
        load_model(ModelSpec(name="no-such-org/no-such-model"))
    assert "roberta-base" in str(err.value) and "HF_HOME" in str(err.value)


def test_layers_only_apply_to_replicas() -> None:
    with pytest.raises(ModelResolutionError, match="layers applies only to replicas"):
        load_model(ModelSpec(name="all-MiniLM-L6-v2", layers=2))


def test_a_task_other_than_the_encoders_is_refused() -> None:
    with pytest.raises(ModelResolutionError, match="load_decoder"):
        load_model(ModelSpec(name="roberta-base", layers=1), task="text-generation")
    with pytest.raises(ModelResolutionError, match="encoders run: text-classification, token"):
        load_model(ModelSpec(name="roberta-base", layers=1), task="summarization")


# Each encoder task: the replica's class and head, its labels where it has them.
TASK_HEADS = [
    ("dslim/bert-base-NER-uncased", "token-classification", "BertForTokenClassification", 9),
    ("distilbert-base-uncased-distilled-squad", "question-answering",
     "DistilBertForQuestionAnswering", None),
    ("roberta-base", "fill-mask", "RobertaForMaskedLM", None),
    ("bert-base-uncased", "feature-extraction", "BertModel", None),
    ("distilbert-base-uncased", "token-classification", "DistilBertForTokenClassification", 2),
]  # fmt: skip


@pytest.mark.parametrize(("name", "task", "architecture", "labels"), TASK_HEADS)
def test_a_replica_is_built_for_each_encoder_task(
    name: str, task: str, architecture: str, labels: int | None
) -> None:
    loaded = load_model(ModelSpec(name=name, layers=1), task)
    ident = loaded.identity
    assert ident["architecture"] == architecture and ident["weights"] == "random"
    assert ident["config"]["layers"] == 1 and "bert-base-uncased" in ident["tokenizer"]
    if labels is not None:
        assert loaded.model.config.num_labels == labels
    if name == "dslim/bert-base-NER-uncased":
        assert loaded.model.config.id2label[3] == "B-PER"
    again = load_model(ModelSpec(name=name, layers=1), task).identity
    assert again["weights_sha256"] == ident["weights_sha256"]  # seeded: the same everywhere


@pytest.mark.parametrize(
    ("task", "weights"),
    [("feature-extraction", "pretrained"), ("fill-mask", "pretrained-encoder, random head"),
     ("question-answering", "pretrained-encoder, random head")],
)  # fmt: skip
def test_the_packaged_minilm_runs_every_task(task: str, weights: str) -> None:
    loaded = load_model(ModelSpec(name="sentence-transformers/all-MiniLM-L6-v2"), task)
    assert loaded.identity["source"] == "package" and loaded.identity["weights"] == weights
    assert loaded.identity["tokenizer"].startswith("all-MiniLM-L6-v2 (packaged)")


@pytest.mark.parametrize("task", ["question-answering", "fill-mask", "feature-extraction"])
def test_a_local_directory_loads_for_every_task(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_MODEL_ROOTS", str(tmp_path))
    saved = load_model(ModelSpec(name="distilbert-base-uncased", layers=1), task)
    saved.model.save_pretrained(tmp_path)
    saved.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(ModelSpec(name=str(tmp_path)), task)
    assert loaded.identity["source"] == "local" and loaded.identity["weights"] == "pretrained"
    assert loaded.identity["weights_sha256"] == saved.identity["weights_sha256"]
    assert loaded.identity["architecture"] == saved.identity["architecture"]


def test_local_directory_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_MODEL_ROOTS", str(tmp_path))
    saved = tiny("distilbert-base-uncased", 1)
    saved.model.save_pretrained(tmp_path)
    saved.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(ModelSpec(name=str(tmp_path)))
    assert loaded.identity["source"] == "local"
    assert loaded.identity["weights"] == "pretrained"
    assert loaded.identity["weights_sha256"] == saved.identity["weights_sha256"]
    assert loaded.model.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}


def test_local_directory_without_a_model_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError, match="local"):
        load_model(ModelSpec(name=str(tmp_path)))


@pytest.mark.parametrize("name", REPLICAS)
def test_replica_runs_in_a_pipeline(name: str) -> None:
    loaded = tiny(name)
    classify = transformers.pipeline(
        "text-classification", model=loaded.model, tokenizer=loaded.tokenizer
    )
    one = classify(SHORT)
    assert len(one) == 1 and one[0]["label"] in {"NEGATIVE", "POSITIVE"}
    many = classify([SHORT, LONG] * 4, batch_size=8)
    assert len(many) == 8 and all(r["label"] in {"NEGATIVE", "POSITIVE"} for r in many)


def test_cached_study_model_beats_the_replica(tmp_path: Path) -> None:
    """A real checkpoint in the HF cache is preferred, with its snapshot commit as revision."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--distilbert--distilbert-base-uncased"
    snapshot = repo / "snapshots" / revision
    saved = tiny("distilbert-base-uncased", 1)
    saved.model.save_pretrained(snapshot)
    saved.tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    script = (
        "import json; from farm.jobs import ModelSpec; from workers.models import load_model; "
        "f = lambda **kw: load_model(ModelSpec(name='distilbert/distilbert-base-uncased', **kw));"
        "print(json.dumps([f().identity, f(layers=1).identity['source']]))"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    ident, with_layers = json.loads(out.stdout.strip().splitlines()[-1])
    assert ident["source"] == "hf-cache" and ident["revision"] == revision
    assert ident["weights_sha256"] == saved.identity["weights_sha256"]
    assert with_layers == "replica"  # layers always means "build the replica"


def test_a_path_outside_the_model_roots_is_refused_on_the_worker_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_MODEL_ROOTS", str(tmp_path / "allowed"))
    with pytest.raises(ModelResolutionError, match="outside the allowed model roots"):
        load_model(ModelSpec(name=str(tmp_path)))
