"""`farm submit` of the tasks' matrices, through the real CLI, PostgreSQL and Redis: a bad
task matrix ends with exit status 1 and one line naming the field and the fix, writing no
campaign, no job and no message; good question-answering and fill-mask matrices store jobs
that carry the context and the {mask} text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from sqlalchemy import create_engine, text

from farm.taskinputs import QA_EXAMPLE
from tests.support.harness import count_rows, farm, farm_env, sql_rows

pytestmark = pytest.mark.acceptance

QA_INPUTS = {
    "shoes": {"question": "What did the customer buy?", "context": "A nice pair of shoes."},
    "walk": {"question": "Where did she walk?", "context": "She walked around Disney World."},
}
MASKED = "This is a really nice pair of {mask}, I am completely satisfied with my purchase"


def task_matrix(task: str, **overrides: Any) -> dict[str, Any]:
    models = {"question-answering": "distilbert-base-uncased-distilled-squad",
              "text-generation": "gpt2"}  # fmt: skip
    matrix: dict[str, Any] = {
        "name": task,
        "task": task,
        "models": [{"name": models.get(task, "distilbert-base-uncased"), "layers": 1}],
        "inputs": QA_INPUTS if task == "question-answering" else {"short": MASKED},
        "batch_sizes": [1, 2],
        "backends": ["pytorch"],
        "pools": ["tk"],  # this file's pools start with tk: other suites share the Redis db
        "protocol": {"warmup": 1, "iterations": 3},
    }
    matrix.update(overrides)
    return {k: v for k, v in matrix.items() if v is not None}


BAD = [
    ("qa-without-context", task_matrix("question-answering", inputs={"q": {"question": "Who?"}}),
     "inputs.q: context is missing; a question-answering input has both: " + QA_EXAMPLE),
    ("qa-plain-text", task_matrix("question-answering", inputs={"q": "Who?"}),
     "inputs.q: question-answering asks a question about a context: give q: " + QA_EXAMPLE),
    ("pair-for-classification", task_matrix("text-classification", inputs=QA_INPUTS),
     "inputs.shoes: a {question, context} input is for task question-answering; task "
     "text-classification takes a text"),
    ("fill-mask-without-mask", task_matrix("fill-mask", inputs={"m": "no placeholder"}),
     "inputs.m: fill-mask needs the placeholder {mask} exactly once in each input (this one "
     "has 0)"),
    ("fill-mask-twice", task_matrix("fill-mask", inputs={"m": "{mask} {mask}"}),
     "inputs.m: fill-mask needs the placeholder {mask} exactly once in each input (this one "
     "has 2)"),
    ("gpt2-question-answering", task_matrix("question-answering", models=["gpt2"]),
     "models.0: gpt2 runs text-generation only, not question-answering; pick a model that "
     "does, e.g. distilbert-base-uncased-distilled-squad"),
    ("distilbert-generation",
     task_matrix("text-generation", models=["distilbert-base-uncased"], new_tokens=[8]),
     "models.0: distilbert-base-uncased runs text-classification, token-classification, "
     "question-answering, feature-extraction or fill-mask only, not text-generation"),
    ("new-tokens-zero", task_matrix("text-generation", new_tokens=[0]),
     "new_tokens.0: 0 new tokens: a generate call makes 1 to 4096 new tokens"),
    ("prompt-beyond-positions",
     task_matrix("text-generation", inputs=None, prompt_tokens=[1000], new_tokens=[32]),
     "models.0: gpt2 reads at most 1024 positions; prompt_tokens 1000 (1000 tokens) and 32 "
     "new tokens do not fit"),
]  # fmt: skip


@pytest.mark.parametrize(("matrix", "line"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_task_matrix_is_refused_writing_nothing(
    matrix: dict[str, Any], line: str, migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(matrix, sort_keys=False))
    result = farm("submit", str(path), env=farm_env(migrated_pg, redis_url), timeout=60)
    assert result.returncode == 1
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {path}: invalid matrix: {line}"), lines[0]
    assert result.stdout == ""
    assert count_rows(migrated_pg, "campaign") == 0
    assert count_rows(migrated_pg, "job") == 0
    assert redis.Redis.from_url(redis_url).keys("*farm.tk*") == []


def _submit(matrix: dict[str, Any], env: dict[str, str], tmp_path: Path) -> int:
    path = tmp_path / f"{matrix['name']}.yaml"
    path.write_text(yaml.safe_dump(matrix, sort_keys=False))
    result = farm("submit", str(path), env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.splitlines()[-1])


def test_qa_and_fill_mask_jobs_carry_their_inputs(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    qa = _submit(task_matrix("question-answering"), env, tmp_path)
    fill = _submit(task_matrix("fill-mask"), env, tmp_path)
    query = "SELECT input_name, spec, task FROM job WHERE campaign_id = :c ORDER BY id"
    rows = sql_rows(migrated_pg, query, c=qa)
    assert [r[0] for r in rows] == ["shoes", "shoes", "walk", "walk"]
    for name, spec, task in rows:
        spec = spec if isinstance(spec, dict) else json.loads(spec)
        assert task == "question-answering"
        assert (spec["input_text"], spec["input_context"]) == (
            QA_INPUTS[name]["question"], QA_INPUTS[name]["context"]
        )  # fmt: skip
    rows = sql_rows(migrated_pg, query, c=fill)
    assert [r[0] for r in rows] == ["short", "short"]
    for _, spec, task in rows:
        spec = spec if isinstance(spec, dict) else json.loads(spec)
        assert task == "fill-mask" and spec["input_text"] == MASKED
        assert "input_context" not in spec
    assert len(redis.Redis.from_url(redis_url).keys("*farm.tk*")) >= 1  # sent to the pool
    # `farm status` names a failed QA job's input as it does a classification job's.
    engine = create_engine(migrated_pg)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE job SET state = 'failed', error = 'RuntimeError: boom' WHERE id = "
                 "(SELECT max(id) FROM job WHERE campaign_id = :c)"),
            {"c": qa},
        )  # fmt: skip
    engine.dispose()
    status = farm("status", str(qa), env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "walk," in status.stdout and "boom" in status.stdout, status.stdout
