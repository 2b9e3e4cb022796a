"""A host with no route to the farm: `farm run --bundle` there, `farm push` here, and the
pushed campaign reads like any other beside a campaign a real worker ran (README, Hosts
behind a firewall)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import edited, tampered, truncated
from tests.support.harness import (
    WorkerProcess,
    count_rows,
    farm,
    farm_env,
    job_states,
    wait_for,
    write_matrix,
)

pytestmark = pytest.mark.acceptance
TABLES = ("campaign", "job", "result", "worker")


def selftest(path: Path, name: str, pool: str) -> Path:
    """Two selftest cells (no model): the same cells whatever the pool."""
    return write_matrix(
        path,
        name=name,
        models=["selftest"],
        inputs={"short": "a short input", "long": "a somewhat longer input " * 4},
        batch_sizes=[1],
        backends=[{"name": "selftest", "options": {"work_ms": 2}}],
        pools=[pool],
        protocol={"warmup": 2, "iterations": 30},
    )


def last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def counts(url: str) -> dict[str, int]:
    return {table: count_rows(url, table) for table in TABLES}


def test_a_bundle_run_offline_reports_beside_the_farms_results(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, redis_url)
    # The farm: a real worker of pool icelake runs a campaign into PostgreSQL.
    worker = WorkerProcess("icelake", "w-ice", env, tmp_path / "w.log", cpus="0")
    try:
        sub = farm("submit", str(selftest(tmp_path / "c.yaml", "central", "icelake")), env=env)
        assert sub.returncode == 0, sub.stderr
        central = int(last_line(sub.stdout))
        wait_for(lambda: {s for _, s, _ in job_states(migrated_pg, central).values()}
                 == {"succeeded"}, 120)  # fmt: skip
    finally:
        worker.stop()

    # The firewalled host: embedded mode into its own SQLite file, and a bundle of it.
    offline_db = f"sqlite:///{tmp_path / 'offline.db'}"
    bundle = tmp_path / "spr.farm"
    matrix = selftest(tmp_path / "o.yaml", "offline", "sapphirerapids")
    run = farm("run", str(matrix), "--bundle", str(bundle), env=farm_env(offline_db), timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"farm push {bundle}" in run.stderr and bundle.is_file()

    push = farm("push", str(bundle), env=env)
    assert push.returncode == 0, push.stderr
    pushed = int(last_line(push.stdout))
    assert pushed != central and "pushed as campaign" in push.stderr
    after = counts(migrated_pg)
    again = farm("push", str(bundle), env=env)
    assert again.returncode == 0, again.stderr
    assert f"already pushed as campaign {pushed} (offline)" in again.stderr
    assert int(last_line(again.stdout)) == pushed and counts(migrated_pg) == after

    states = job_states(migrated_pg, pushed)
    assert (
        sorted((pool, state) for pool, state, _ in states.values())
        == [("sapphirerapids", "succeeded")] * 2
    )
    here = socket.gethostname()
    report = farm("report", str(central), str(pushed), "--format", "json", env=env)
    assert report.returncode == 0, report.stderr
    rows: list[dict[str, Any]] = json.loads(report.stdout)
    by_campaign = {c: [r for r in rows if r["campaign"] == c] for c in (central, pushed)}
    assert {r["worker"] for r in by_campaign[central]} == {"w-ice"}
    assert {(r["pool"], r["worker"], r["host"]) for r in by_campaign[pushed]} == {
        ("sapphirerapids", f"embedded@{here}", here)
    }
    assert all(r["state"] == "succeeded" and r["n"] == 30 for r in rows) and len(rows) == 4
    table = farm("report", str(central), str(pushed), env=env)
    assert table.returncode == 0 and "sapphirerapids" in table.stdout and "icelake" in table.stdout

    compare = farm("compare", str(central), str(pushed), "--pools", "icelake,sapphirerapids",
                   "--format", "json", env=env)  # fmt: skip
    assert compare.returncode == 0, compare.stderr
    pairs = json.loads(compare.stdout)
    assert sorted(p["input"] for p in pairs) == ["long", "short"]
    assert all(p["a_n"] == p["b_n"] == 30 and p["ratio"] > 0 for p in pairs)
    print("report of both campaigns:\n" + table.stdout)  # the closing note shows it


def test_bad_bundles_are_refused_with_one_line(migrated_pg: str, tmp_path: Path) -> None:
    """Each refusal: exit status 1, one line on stderr, not a row written."""
    offline_db = f"sqlite:///{tmp_path / 'offline.db'}"
    bundle = tmp_path / "spr.farm"
    matrix = selftest(tmp_path / "o.yaml", "offline", "sapphirerapids")
    run = farm("run", str(matrix), "--bundle", str(bundle), env=farm_env(offline_db), timeout=300)
    assert run.returncode == 0, run.stderr
    (tmp_path / "m.yaml").write_text("name: x\n")
    empty_db = f"sqlite:///{tmp_path / 'empty.db'}"
    cases = [
        (truncated(bundle, tmp_path / "cut.farm"), migrated_pg, "is truncated"),
        (tampered(bundle, tmp_path / "bad.farm"), migrated_pg, "fails its checksum"),
        (edited(bundle, tmp_path / "new.farm", header_edit=lambda h: h.update(schema=2)),
         migrated_pg, "bundle schema 2, this Farm reads up to 1; upgrade Farm"),
        (tmp_path / "m.yaml", migrated_pg, "is not a Farm bundle"),
        (tmp_path / "none.farm", migrated_pg, "no bundle at"),
        (bundle, empty_db, "has no Farm schema; run `farm db upgrade` first"),
    ]  # fmt: skip
    for path, url, says in cases:
        out = farm("push", str(path), env=farm_env(url))
        assert out.returncode == 1, (path, out.stdout)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], (path, out.stderr)
        assert out.stdout == ""
        assert counts(migrated_pg) == dict.fromkeys(TABLES, 0)
    late = farm("run", str(matrix), "--bundle", str(tmp_path / "no" / "x.farm"),
                env=farm_env(offline_db))  # fmt: skip
    assert late.returncode == 1 and "cannot write in" in late.stderr
    assert count_rows(offline_db, "campaign") == 1  # refused before it ran anything
