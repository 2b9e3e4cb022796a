"""Fixed 1,000 calls against the adaptive stop: how much time it saves, and whether it agrees.

The seed matrix (examples/seed.yaml) with the `pytorch` backend on one pool, its models
replaced by small replicas (`--layers`, default 1) or the packaged MiniLM (`--minilm`), is
run twice in embedded mode (`farm run`, SQLite, in-process): once with the seed protocol
(100 warm-up + 1,000 timed calls) and once with `--profile adaptive` (until p99's 95 %
interval is within ±2 %, 662 to 20,000 calls, at most `--max-duration` seconds per cell).
It prints, per cell, each run's p99 with its 95 % interval, the adaptive run's calls and
stop reason, and whether the two p99 intervals overlap; then the wall-time ratio.

By default the two protocols take turns cell by cell (one `farm run` per cell and
protocol, the order alternating), so a host whose load drifts over minutes affects both
alike; `--whole` runs the whole matrix once per protocol instead (two `farm run`s).

    .venv/bin/python benchmarks/adaptive.py
    .venv/bin/python benchmarks/adaptive.py --models distilbert-base-uncased --max-duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
FARM = str(Path(sys.executable).with_name("farm"))
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def matrix_for(args: argparse.Namespace) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "examples" / "seed.yaml").read_text())
    data["name"] = "seed-adaptive"
    data["backends"] = ["pytorch"]
    data["pools"] = [args.pool]
    data.pop("exclude", None)  # they pair backends with pools; one of each is left
    if args.minilm:
        data["models"] = [MINILM]
    else:
        names = args.models or data["models"]
        data["models"] = [{"name": m, "layers": args.layers} for m in names]
    if args.inputs:
        data["inputs"] = {k: v for k, v in data["inputs"].items() if k in args.inputs}
    if args.batch_sizes:
        data["batch_sizes"] = args.batch_sizes
    return data


def run(
    matrix: Path, db: Path, protocol_args: list[str], args: argparse.Namespace
) -> tuple[float, list[dict[str, Any]]]:
    cmd = [FARM, "run", str(matrix), "--database-url", f"sqlite:///{db}", *protocol_args]
    cmd += ["--cpus", args.cpus, "--threads", str(args.threads)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("FARM_DATABASE_URL", None)
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    campaign = int(out.stdout.strip().splitlines()[-1])
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT j.model, j.input_name, j.batch_size, j.state, j.error, r.n, r.p99_ms, "
            "r.stats, r.verdict, r.reasons, r.environment, r.measure_s FROM job j "
            "LEFT JOIN result r ON r.job_id = j.id WHERE j.campaign_id = ? ORDER BY j.id",
            (campaign,),
        ).fetchall()
    cells = []
    for model, input_name, batch, state, error, n, p99, stats, verdict, reasons, env_, m_s in rows:
        if state != "succeeded":
            raise SystemExit(f"job {model} {input_name} b{batch} {state}: {error}")
        ci = json.loads(stats)["ci95_ms"]["p99"]
        cells.append(
            {
                "cell": (model, input_name, batch),
                "n": n,
                "p99": p99,
                "ci": ci,
                "verdict": verdict,
                "reasons": json.loads(reasons or "[]"),
                "stop": json.loads(env_)["stop_reason"],
                "measure_s": m_s,
            }
        )
    return wall, cells


def fmt_ci(cell: dict[str, Any]) -> str:
    if cell["ci"] is None:
        return f"{cell['p99']:.2f} [unsupported]"
    lo, hi = cell["ci"]
    return f"{cell['p99']:.2f} [{lo:.2f}, {hi:.2f}]"


def overlap(a: dict[str, Any], b: dict[str, Any]) -> str:
    if a["ci"] is None or b["ci"] is None:
        return "n/a"
    return "yes" if max(a["ci"][0], b["ci"][0]) <= min(a["ci"][1], b["ci"][1]) else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=1, help="replica layers (default 1)")
    parser.add_argument("--minilm", action="store_true", help="the packaged MiniLM instead")
    parser.add_argument("--models", nargs="+", help="a subset of the seed's three models")
    parser.add_argument("--inputs", nargs="+", choices=["short", "long"], help="input subset")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="batch subset (seed: 1 8)")
    parser.add_argument("--pool", default="icelake")
    parser.add_argument("--cpus", default="1", help="CPUs `farm run` is pinned to (default 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-duration",
        type=float,
        help="adaptive: seconds per cell before giving up (the profile's is 300)",
    )
    parser.add_argument(
        "--whole", action="store_true", help="one `farm run` per protocol, not per cell"
    )
    args = parser.parse_args()

    data = matrix_for(args)
    adaptive_protocol: dict[str, Any] = {"profile": "adaptive"}
    if args.max_duration:
        adaptive_protocol["max_duration_s"] = args.max_duration
    with tempfile.TemporaryDirectory(prefix="farm-adaptive-") as name:
        tmp = Path(name)
        # `farm run --profile adaptive` is the same protocol; the file form also lets
        # --max-duration shorten the profile's 5-minute cap
        labels = [
            m if isinstance(m, str) else f"{m['name']}[{m['layers']}L]" for m in data["models"]
        ]
        print(
            f"seed matrix, pytorch on one pool, models {labels}"
            f", inputs {list(data['inputs'])}, batch sizes {data['batch_sizes']}; "
            f"cpus {args.cpus}, {args.threads} thread(s); load average "
            f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        )
        print(f"adaptive protocol: {adaptive_protocol}")
        protocols = {"fixed": "seed", "adaptive": adaptive_protocol}
        walls = {"fixed": 0.0, "adaptive": 0.0}
        found: dict[str, list[dict[str, Any]]] = {"fixed": [], "adaptive": []}
        if args.whole:
            parts = [data]
        else:  # one matrix per cell
            parts = [
                {**data, "models": [m], "inputs": {k: v}, "batch_sizes": [b]}
                for m in data["models"]
                for k, v in data["inputs"].items()
                for b in data["batch_sizes"]
            ]
        for i, part in enumerate(parts):
            order = ["fixed", "adaptive"] if i % 2 == 0 else ["adaptive", "fixed"]
            for kind in order:
                path = tmp / f"{kind}-{i}.yaml"
                path.write_text(yaml.safe_dump({**part, "protocol": protocols[kind]}))
                wall, cells = run(path, tmp / f"{kind}.db", [], args)
                walls[kind] += wall
                found[kind] += cells
        fixed_wall, adaptive_wall = walls["fixed"], walls["adaptive"]
        fixed = sorted(found["fixed"], key=lambda c: c["cell"])
        adaptive = sorted(found["adaptive"], key=lambda c: c["cell"])
        print(f"fixed (100 + 1,000 calls): {fixed_wall:.1f} s of `farm run`")
        print(f"adaptive (±2 % p99):       {adaptive_wall:.1f} s of `farm run`\n")

    head = (
        f"{'model':<28} {'input':<6} {'batch':>5} | {'fixed p99 ms [95% CI]':<26} | "
        f"{'adaptive p99 ms [95% CI]':<26} {'calls':>6} {'stop reason':<21} "
        f"{'verdict':<8} | {'agree':<5}"
    )
    print(head)
    print("-" * len(head))
    agree = 0
    for f, a in zip(fixed, adaptive, strict=True):
        assert f["cell"] == a["cell"]
        model, input_name, batch = f["cell"]
        ok = overlap(f, a)
        agree += ok == "yes"
        print(
            f"{model:<28} {input_name:<6} {batch:>5} | {fmt_ci(f):<26} | {fmt_ci(a):<26} "
            f"{a['n']:>6} {a['stop']:<21} {a['verdict']:<8} | {ok:<5}"
        )
    measure_f = sum(c["measure_s"] for c in fixed)
    measure_a = sum(c["measure_s"] for c in adaptive)
    print(
        f"\np99 intervals overlap in {agree} of {len(fixed)} cells; "
        f"adaptive reached its target in "
        f"{sum(c['stop'] == 'target reached' for c in adaptive)} of {len(adaptive)}"
    )
    print(
        f"wall time: fixed {fixed_wall:.1f} s, adaptive {adaptive_wall:.1f} s, ratio "
        f"(adaptive / fixed) {adaptive_wall / fixed_wall:.2f}; measuring only: "
        f"{measure_f:.1f} s vs {measure_a:.1f} s ({measure_a / measure_f:.2f})"
    )


if __name__ == "__main__":
    main()
