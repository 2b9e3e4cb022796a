"""`farm recommend` end to end: the real CLI in subprocesses, each format and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import reportdata
from tests.support.harness import farm, farm_env

pytestmark = pytest.mark.acceptance
CHECKED = {"output_check": {"status": "checked", "max_abs_logit_diff": 0.001}}


def _noisy(mean: float, seed: int) -> list[float]:
    return list(np.round(np.random.default_rng(seed).normal(mean, mean * 0.02, 300), 3))


SAMPLES = {
    ("short", "pytorch", "icelake"): _noisy(30.0, 1),
    ("short", "ipex", "spr"): _noisy(15.0, 2),
    ("long", "pytorch", "icelake"): _noisy(120.0, 3),
    ("long", "ipex", "spr"): _noisy(60.0, 4),
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    from farm.db.migrate import upgrade

    upgrade(url)
    extra = {key: CHECKED for key in SAMPLES}
    extra[("long", "ipex", "spr")] = {"output_check": None}  # no check recorded
    reportdata.add_campaign(url, "bench", SAMPLES, extra)
    return farm_env(url)


def test_table_markdown_and_json(env: dict[str, str], tmp_path: Path) -> None:
    run = farm("recommend", "bench", env=env)
    assert run.returncode == 0, run.stderr
    short = next(line for line in run.stdout.splitlines() if "short (18)" in line)
    assert "ipex(dtype=bf16)@spr" in short and "pytorch@icelake" in short
    assert f"{np.mean(SAMPLES[('short', 'ipex', 'spr')]):.2f}" in short
    assert "significant" in short and "not significant" not in short
    assert "left out: output check: none recorded — 1 cell" in run.stdout

    run = farm("recommend", "bench", "--objective", "p99", "--format", "markdown", env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "### Recommendation for campaign 1 (bench): p99"
    long = next(line for line in lines if "long (151)" in line)
    assert "| pytorch@icelake |" in long and long.endswith("| only candidate |")
    p99 = np.percentile(SAMPLES[("long", "pytorch", "icelake")], 99)
    assert f"| {p99:.2f} |" in long

    out = tmp_path / "rec.json"
    run = farm("recommend", "bench", "--format", "json", "-o", str(out), env=env)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["objective"] == "mean" and [c["input"] for c in data["choices"]] == [
        "short", "long"]  # fmt: skip
    short_json = data["choices"][0]
    assert short_json["best"]["column"] == "ipex(dtype=bf16)@spr"
    assert short_json["significant"] is True and short_json["p_value"] < 1e-10
    assert short_json["margin"] == pytest.approx(
        np.mean(SAMPLES[("short", "pytorch", "icelake")])
        / np.mean(SAMPLES[("short", "ipex", "spr")]) - 1
    )


def test_cost_with_prices(env: dict[str, str]) -> None:
    for pool, price in (("icelake", "1.0"), ("spr", "4.0")):
        priced = farm("pools", "price", pool, price, env=env)
        assert priced.returncode == 0, priced.stderr
    run = farm("recommend", "bench", "--objective", "cost", "--format", "json", env=env)
    assert run.returncode == 0, run.stderr
    short = json.loads(run.stdout)["choices"][0]
    assert short["best"]["pool"] == "icelake" and short["best"]["currency"] == "USD"
    assert short["best"]["value"] == pytest.approx(
        1.0 / 3600 * np.mean(SAMPLES[("short", "pytorch", "icelake")]) / 1000 * 1e6
    )


def test_bad_input_gets_one_clear_line(env: dict[str, str]) -> None:
    for args, message in (
        (("recommend", "nope"), "unknown campaign 'nope'; `farm campaigns` lists them"),
        (("recommend", "bench", "--objective", "fastest"), "'fastest' is not one of 'mean'"),
        (("recommend", "bench", "--objective", "cost"),
         "the cost objective needs pool prices and none of icelake, spr has one: set them "
         "with `farm pools price POOL PRICE_PER_HOUR`"),
        (("recommend", "bench", "--format", "csv"), "'csv' is not one of 'table'"),
        (("recommend", "bench", "--model", "bert"), "matches --model bert"),
    ):  # fmt: skip
        run = farm(*args, env=env)
        assert run.returncode != 0, args
        assert message in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.stderr and not run.stdout
