"""text-generation end to end: a real `farm worker` runs a gpt2 (1 layer) generation matrix
through the usual job path, and `farm report --format json` carries TTFT, TPOT and tokens/s
from the raw per-call samples; a backend that cannot generate is refused at submit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from farm.hardware import native_bf16
from farm.stats import decode_samples
from farm.workers.probe import cpu_flags
from tests.support.harness import WorkerProcess, farm, farm_env, job_states, sql_rows, wait_for

pytestmark = pytest.mark.integration

# bf16 where this host computes in bf16 natively, read as Farm reads the CPU's flags.
DTYPES = ["fp32", "bf16"] if native_bf16(cpu_flags()) else ["fp32"]
KEYS = ("ttft_ms", "ttft_p99_ms", "tpot_ms", "tpot_p99_ms", "tokens_per_s")


def gen_matrix(path: Path, pool: str, **overrides: object) -> Path:
    matrix = {
        "name": "gen",
        "task": "text-generation",
        "models": [{"name": "gpt2", "layers": 1}],
        "prompt_tokens": [8],
        "new_tokens": [4],
        "batch_sizes": [1, 2],
        "backends": [{"name": "pytorch", "options": {"dtype": d}} for d in DTYPES],
        "pools": [pool],
        "protocol": {"warmup": 1, "iterations": 5},
        **overrides,
    }
    path.write_text(yaml.safe_dump(matrix))
    return path


def test_a_worker_runs_a_generation_matrix_and_json_has_its_metrics(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    worker = WorkerProcess("gen", "w-gen", env, tmp_path / "worker.log")
    try:
        sub = farm("submit", str(gen_matrix(tmp_path / "m.yaml", "gen")), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])
        states = lambda: job_states(migrated_pg, campaign).values()  # noqa: E731
        wait_for(lambda: all(s in ("succeeded", "failed") for _, s, _ in states()), 300)
    finally:
        worker.stop()
    assert [s for _, s, _ in states()] == ["succeeded"] * (2 * len(DTYPES)), list(states())
    out = farm("report", str(campaign), "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert sorted((r["batch_size"], r["backend_options"]["dtype"]) for r in rows) == sorted(
        (b, d) for b in (1, 2) for d in DTYPES
    )
    for r in rows:
        assert (r["task"], r["new_tokens"], r["prompt_tokens"], r["tokens"]) == (
            "text-generation", 4, 8, 8,
        )  # fmt: skip
        assert r["n"] == 5 and all(isinstance(r[k], float) for k in KEYS), r
        assert 0 < r["ttft_ms"] < r["mean_ms"] and r["ttft_ms"] <= r["ttft_p99_ms"]
        # Means of per-call values: TPOT's mean is (mean end-to-end − mean TTFT) / 3 exactly.
        assert r["tpot_ms"] == pytest.approx((r["mean_ms"] - r["ttft_ms"]) / 3, rel=1e-9)
        assert r["tokens_per_s"] == pytest.approx(r["batch_size"] * 4 * 1000 / r["mean_ms"])
        check = r["output_check"]
        assert check["status"] == "checked" and check["tokens_checked"] == 4 * r["batch_size"]
        assert check["max_abs_logit_diff"] <= check["tolerance"]
        assert 0.0 <= check["token_agreement"] <= 1.0
        assert r["tokenizer"].startswith("byte-level")
    table = farm("report", str(campaign), "--format", "markdown", env=env)
    assert table.returncode == 0, table.stderr
    header = "mean (ms) / p99 (ms) / ttft (ms) / ttft_p99 (ms) / tpot (ms) / tpot_p99 (ms) / "
    assert header + "tokens_per_s (tok/s)" in table.stdout, table.stdout
    assert "| prompt8 +4 new (8) |" in table.stdout
    one = farm("report", str(campaign), "--metric", "tokens_per_s", "--format", "markdown",
               env=env)  # fmt: skip
    assert one.returncode == 0 and "tokens_per_s (tok/s) |" in one.stdout, one.stderr
    stored = sql_rows(
        migrated_pg,
        "SELECT r.n, r.ttft_samples, r.ttft_ms, r.environment FROM result r JOIN job j "
        "ON j.id = r.job_id WHERE j.campaign_id = :c",
        c=campaign,
    )
    for n, blob, ttft_ms, environment in stored:
        ttft = decode_samples(bytes(blob))
        assert ttft.size == n and ttft.mean() / 1e6 == pytest.approx(ttft_ms)
        environment = environment if isinstance(environment, dict) else json.loads(environment)
        assert environment["timed"].startswith("one generate call: exactly new_tokens")


def test_submit_refuses_what_generation_cannot_have_and_writes_nothing(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    before = sql_rows(migrated_pg, "SELECT count(*) FROM campaign")[0][0]
    for overrides, expected in (
        ({"measure": ["forward"]}, "measure: forward does not apply to text-generation"),
        ({"new_tokens": [0]}, "new_tokens.0"),
        ({"prompt_tokens": [1024]}, "gpt2 reads at most 1024 positions"),
    ):  # fmt: skip
        out = farm("submit", str(gen_matrix(tmp_path / "bad.yaml", "gen", **overrides)), env=env)
        assert out.returncode != 0
        assert expected in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert sql_rows(migrated_pg, "SELECT count(*) FROM campaign")[0][0] == before


def test_embedded_run_of_a_selftest_generation_matrix(sqlite_url: str, tmp_path: Path) -> None:
    """`farm run` takes the same path: selftest generates (its capability row says so)."""
    env = farm_env(sqlite_url)
    matrix = gen_matrix(
        tmp_path / "s.yaml", "local", models=["spin"], prompt_tokens=None,
        inputs={"hello": "hello there"}, new_tokens=[3], batch_sizes=[1],
        backends=[{"name": "selftest", "options": {"work_ms": 1}}],
    )  # fmt: skip
    run = farm("run", str(matrix), "--cpus", "0", env=env)
    assert run.returncode == 0, run.stderr
    out = farm("report", run.stdout.strip().splitlines()[-1], "--format", "json", env=env)
    (row,) = json.loads(out.stdout)
    assert (row["state"], row["task"], row["new_tokens"], row["tokens"]) == (
        "succeeded", "text-generation", 3, 2,
    )  # fmt: skip
    assert row["tpot_ms"] == pytest.approx((row["mean_ms"] - row["ttft_ms"]) / 2, rel=1e-9)
    assert row["output_check"]["status"] == "unavailable"
