"""The report commands end to end: the real `farm` CLI in subprocesses, on known data."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import reportdata
from tests.support.harness import farm, farm_env

pytestmark = pytest.mark.acceptance
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def blog(tmp_path: Path) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    reportdata.seed_blog(url)
    return url, farm_env(url)


def test_blog_table_with_speedups_and_cost(blog: tuple[str, dict[str, str]]) -> None:
    _, env = blog
    priced = farm("pools", "price", "spr", "4.46", env=env)
    assert priced.returncode == 0, priced.stderr
    listing = farm("pools", env=env)
    assert "spr" in listing.stdout and "4.46" in listing.stdout and "icelake" in listing.stdout
    run = farm(
        "report", "blog", "--baseline", "backend=pytorch,pool=icelake", "--cost",
        "--format", "markdown", env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    short = next(line for line in lines if "short (18)" in line)
    assert "30.00 / 49.60" in short and "15.00 / 24.80" in short
    assert "2.00× / 2.00×" in short and "$18.583" in short
    long = next(line for line in lines if "long (151)" in line)
    assert "2.00× / 1.75×" in long
    assert "no price for pool(s) icelake" in run.stdout


def test_unknown_empty_and_unmatched_give_clear_messages(
    blog: tuple[str, dict[str, str]],
) -> None:
    url, env = blog
    from farm.db import repo
    from farm.db.session import session_factory, transaction

    with transaction(session_factory(url)) as s:
        repo.create_campaign(s, "empty", {}, [])
    for args, message in (
        (("report", "nope"), "unknown campaign 'nope'"),
        (("report", "empty"), "has no jobs: nothing to report"),
        (("report", "blog", "--baseline", "backend=openvino"), "matches no column"),
        (("report", "blog", "--model", "bert"), "matches --model bert"),
        (("compare", "blog", "--pools", "icelake,spr"), "A and B differ in backend"),
        (("compare", "nope", "blog"), "unknown campaign 'nope'"),
        (("plot", "empty", "-o", "x.png"), "has no jobs"),
        (("export", "empty", "--raw"), "has no jobs"),
    ):
        run = farm(*args, env=env)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert message in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.stderr


def test_csv_and_json_round_trip_through_pandas(
    blog: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    pd = pytest.importorskip("pandas")
    _, env = blog
    cells = farm("report", "blog", "blog-repeat", "--format", "csv", env=env)
    assert cells.returncode == 0, cells.stderr
    df = pd.read_csv(io.StringIO(cells.stdout))
    assert len(df) == 4
    short = df[(df["input"] == "short") & (df["backend"] == "pytorch")].iloc[0]
    assert short["p99_ms"] == pytest.approx(69.4) and bool(short["pooled"])
    assert short["jobs"] == 2 and short["n"] == 7
    per_job = farm("report", "blog", "--format", "csv", "--per-job", env=env)
    assert len(pd.read_csv(io.StringIO(per_job.stdout))) == 4
    jobs = farm("export", "blog", "--jobs", "--format", "json", "-o", str(tmp_path / "j.json"),
                env=env)  # fmt: skip
    assert jobs.returncode == 0, jobs.stderr
    frame = pd.read_json(tmp_path / "j.json")
    assert sorted(frame["mean_ms"]) == [15.0, 30.0, 60.0, 120.0]
    raw = farm("export", "blog", "blog-repeat", "--raw", "-o", str(tmp_path / "s.csv"), env=env)
    assert raw.returncode == 0, raw.stderr
    samples = pd.read_csv(tmp_path / "s.csv")
    assert len(samples) == 22  # 4 jobs × 5 samples + 2
    cell = samples[(samples["input"] == "short") & (samples["backend"] == "pytorch")]
    assert sorted(cell["latency_ms"]) == [10, 20, 30, 40, 50, 60, 70]
    assert cell.groupby("job")["latency_ms"].mean().to_dict() == pytest.approx(
        {1: 30.0, 5: 65.0}
    )


def test_bencher_metric_format(blog: tuple[str, dict[str, str]]) -> None:
    _, env = blog
    run = farm("export", "blog", "--bmf", env=env)
    assert run.returncode == 0, run.stderr
    bmf = json.loads(run.stdout)
    bench = bmf["distilbert-base-uncased/short/batch 1/ipex(dtype=bf16)@spr"]
    assert bench["latency"]["value"] == pytest.approx(15e6)
    assert bench["latency"]["lower_value"] < 15e6 < bench["latency"]["upper_value"]
    assert bench["throughput"]["value"] == pytest.approx(1000 / 15)


def test_plot_and_html_report(blog: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    _, env = blog
    png = tmp_path / "chart.png"
    run = farm("plot", "blog", "-o", str(png), "--baseline", "pool=icelake", env=env)
    assert run.returncode == 0, run.stderr
    assert png.read_bytes().startswith(PNG_MAGIC)
    page = tmp_path / "report.html"
    run = farm("report", "blog", "--format", "html", "-o", str(page), env=env)
    assert run.returncode == 0, run.stderr
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "data:image/png;base64,iVBORw0KGgo" in text
    assert "<td>30.00 / 49.60</td>" in text


def _noisy(mean: float, seed: int) -> list[float]:
    return list(np.round(np.random.default_rng(seed).normal(mean, mean * 0.02, 300), 3))


def test_fail_on_regression_exit_status(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    from farm.db.migrate import upgrade

    upgrade(url)
    key = ("short", "pytorch", "icelake")
    reportdata.add_campaign(url, "base", {key: _noisy(10.0, 1)})
    reportdata.add_campaign(url, "slow", {key: _noisy(11.0, 2)})  # 10 % slower
    reportdata.add_campaign(url, "same", {key: _noisy(10.0, 3)})
    env = farm_env(url)
    slow = farm("compare", "base", "slow", "--fail-on-regression", env=env)
    assert slow.returncode == 3, slow.stderr
    assert "slower" in slow.stdout and "1 significant regression" in slow.stderr
    same = farm("compare", "base", "same", "--fail-on-regression", env=env)
    assert same.returncode == 0, same.stderr
    assert "no significant difference" in same.stdout
    lenient = farm("compare", "base", "slow", "--fail-on-regression", "--threshold", "15%",
                   env=env)  # fmt: skip
    assert lenient.returncode == 0 and "no significant difference" in lenient.stdout
    faster = farm("compare", "slow", "base", "--fail-on-regression", "--format", "json",
                  env=env)  # fmt: skip
    assert faster.returncode == 0
    (row,) = json.loads(faster.stdout)
    assert row["verdict"] == "faster" and row["p_value"] < 0.01
    assert row["ratio"] == pytest.approx(np.mean(_noisy(10.0, 1)) / np.mean(_noisy(11.0, 2)))
