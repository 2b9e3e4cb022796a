"""What does Farm cost? The same cell measured by a plain loop and through Farm, alternating.

Part 1 — the timed calls (issue 12's aim). One cell (distilbert-base-uncased, the blog's
short sentence, batch 1, at full protocol: 100 warm-up + 1,000 timed calls) is measured
in rounds. Each round runs, in an order that rotates from round to round so only one runs
at a time:

- the plain loop, in the style of the blog's `benchmark()` (a transformers pipeline,
  `time.perf_counter_ns` around each call), in a process of its own — the reference;
- the plain loop again, in a second process of its own: the A/A pair shows the host's
  own noise beside Farm's figures;
- Farm through a real `farm worker` (Redis, PostgreSQL, `farm submit`);
- Farm embedded: `farm run --cpus C --threads T` (SQLite), a fresh process each round.

All are pinned to the same CPUs with the same torch thread count, load the model through
the same offline resolver and call the same pipeline on the same sentence. For each path
(A/A, worker, embedded) against the reference, the script prints the median over rounds
of the ratio of means with a bootstrap 95 % interval, and the median ratio of p99s. The
aim: mean ratio within 1 % of 1 with its interval inside [0.98, 1.02], p99 ratio inside
[0.95, 1.05], over at least 10 rounds.

Part 2 — end-to-end wall time. The quick matrix (examples/quick.yaml, its pools collapsed
into one so a single worker and a single plain process get the same CPUs) through Farm —
from `farm submit` to the last result, model loads included — against a plain script that
runs the same cells in one process (model loads included). The aim is at most 1.15x.

    .venv/bin/python benchmarks/overhead.py --cpus 1 --skip-part2    # the aim: 10 rounds
    .venv/bin/python benchmarks/overhead.py --rounds 2 --layers 2 --warmup 5 \
        --iterations 20 --skip-part2                                  # a quick check of it

Services: PostgreSQL (a scratch database `farm_bench_overhead`, created and dropped here, on
the server of FARM_DATABASE_URL or --postgres) and Redis database 13 (on the host of
FARM_BROKER_URL or --redis), emptied before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.benchfarm import (  # noqa: E402 (after the checkout is on the path)
    FARM,
    REDIS_DB,
    SCRATCH_DB,
    Services,
    bootstrap_median_ci,
    start_worker,
    write_yaml,
)
from tests.support.plainloop import Plain, all_cpus  # noqa: E402

SHORT = "This is a really nice pair of shoes, I am completely satisfied with my purchase"


# --- the two parts ---------------------------------------------------------------------------


def model_entry(layers: int | None) -> dict[str, Any]:
    return {"name": "distilbert-base-uncased", **({"layers": layers} if layers else {})}


MEAN_AIM, MEAN_CI_AIM, P99_AIM = 0.01, (0.98, 1.02), (0.95, 1.05)
PATHS = ("plain A/A", "worker", "embedded")  # each against the reference plain loop


def run_embedded(matrix: Path, cpus: str, threads: int, database_url: str) -> tuple[float, float]:
    """`farm run --cpus C --threads T` in a fresh process; (mean, p99) of its one result."""
    from sqlalchemy import create_engine, text

    env = dict(os.environ, FARM_DATABASE_URL=database_url, HF_HUB_OFFLINE="1")
    env.pop("LD_PRELOAD", None)
    out = subprocess.run(  # noqa: S603 (our own executables)
        [FARM, "run", str(matrix), "--cpus", cpus, "--threads", str(threads)],
        env=env, capture_output=True, text=True, check=False, preexec_fn=all_cpus,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"farm run failed: {out.stderr[-2000:]}")
    campaign = int(out.stdout.strip().splitlines()[-1])
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            mean, p99 = conn.execute(
                text("SELECT r.mean_ms, r.p99_ms FROM result r JOIN job j ON j.id = r.job_id "
                     "WHERE j.campaign_id = :c"), {"c": campaign},
            ).one()  # fmt: skip
    finally:
        engine.dispose()
    return float(mean), float(p99)


def verdict(means: list[float], p99s: list[float]) -> str:
    """One line against the aim: median ratio of means with its interval, and of p99s."""
    mean, (lo, hi) = statistics.median(means), bootstrap_median_ci(means)
    p99, (plo, phi) = statistics.median(p99s), bootstrap_median_ci(p99s)
    ok_mean = abs(mean - 1) <= MEAN_AIM and MEAN_CI_AIM[0] <= lo and hi <= MEAN_CI_AIM[1]
    ok_p99 = P99_AIM[0] <= p99 <= P99_AIM[1]
    return (f"mean {mean:.4f} [{lo:.4f}, {hi:.4f}] ({'meets' if ok_mean else 'misses'} the "
            f"aim) | p99 {p99:.4f} [{plo:.4f}, {phi:.4f}] "
            f"({'meets' if ok_p99 else 'misses'} the aim)")  # fmt: skip


def part_one(args: argparse.Namespace, services: Services, tmp: Path) -> None:
    model = model_entry(args.layers)
    matrix = write_yaml(
        tmp / "cell.yaml",
        {
            "name": "overhead-cell",
            "models": [model],
            "inputs": {"short": SHORT},
            "batch_sizes": [1],
            "backends": ["pytorch"],
            "pools": ["bench"],
            "protocol": {"warmup": args.warmup, "iterations": args.iterations},
        },
    )
    label = f"{model['name']}" + (f"[{args.layers}L]" if args.layers else " (6 layers)")
    print(
        f"\n== Part 1: one cell, plain loop vs Farm (worker, embedded) and an A/A pair, "
        f"{args.rounds} rounds, order rotating ==\n"
        f"cell: {label}, short sentence, batch 1, {args.warmup} warm-up + "
        f"{args.iterations} timed calls; cpus {args.cpus}, {args.threads} thread(s)\n"
        f"aim: mean ratio within {MEAN_AIM:.0%} of 1, its 95 % interval inside "
        f"{list(MEAN_CI_AIM)}; p99 ratio inside {list(P99_AIM)}"
    )
    plain = Plain(args.cpus, args.threads, args.plain_gc_off)
    plain_b = Plain(args.cpus, args.threads, args.plain_gc_off)
    worker = start_worker(services, "bench", args.cpus, args.threads, tmp / "worker-cell.log")
    cell = {"op": "cell", "model": model, "text": SHORT, "batch": 1}
    calls = {"warmup": args.warmup, "iterations": args.iterations}
    embedded_db = f"sqlite:///{tmp / 'embedded.db'}"

    def ask(side: Plain) -> tuple[float, float]:
        reply = side.ask(**cell, **calls)
        return float(reply["mean_ms"]), float(reply["p99_ms"])

    farm_env: dict[str, Any] = {}

    def run_worker() -> tuple[float, float]:
        (row,) = services.wait(services.submit(matrix))
        farm_env.update(row[1])
        return float(row[0]), float(row[4])

    sides: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        ("plain", lambda: ask(plain)),
        ("plain A/A", lambda: ask(plain_b)),
        ("worker", run_worker),
        ("embedded", lambda: run_embedded(matrix, args.cpus, args.threads, embedded_db)),
    ]
    ratios: dict[str, tuple[list[float], list[float]]] = {p: ([], []) for p in PATHS}
    try:
        for _, fn in sides:  # priming: model loads, first-touch effects; not counted
            fn()
        print(
            f"plain processes: affinity {plain.info['affinity']}, {plain.info['threads']} "
            f"thread(s); Farm worker: affinity {farm_env.get('affinity')}, "
            f"{farm_env.get('threads')} thread(s)"
        )
        head = " ".join(f"{name + ' mean/p99 ms':>24}" for name, _ in sides)
        print(f"{'round':>5}  {head}  ratios of means (A/A, worker, embedded)")
        for i in range(args.rounds):
            order = sides[i % len(sides) :] + sides[: i % len(sides)]
            got = {name: fn() for name, fn in order}
            ref_mean, ref_p99 = got["plain"]
            for path in PATHS:
                ratios[path][0].append(got[path][0] / ref_mean)
                ratios[path][1].append(got[path][1] / ref_p99)
            cells = " ".join(f"{got[n][0]:>11.3f} / {got[n][1]:>9.3f}" for n, _ in sides)
            rs = ", ".join(f"{ratios[p][0][-1]:.3f}" for p in PATHS)
            print(f"{i + 1:>5}  {cells}  {rs}  (first: {order[0][0]})")
    finally:
        worker.stop()
        plain.stop()
        plain_b.stop()
    print("median ratio to the plain loop over rounds, bootstrap 95 % interval:")
    for path in PATHS:
        print(f"  {path:<10} {verdict(*ratios[path])}")


def part_two(args: argparse.Namespace, services: Services, tmp: Path) -> list[float]:
    import yaml

    from farm.matrix import parse_matrix

    data = yaml.safe_load((REPO / "examples" / "quick.yaml").read_text())
    data["pools"] = ["matrix"]  # one pool: one worker and one plain process on the same CPUs
    if args.layers:
        data["models"] = [model_entry(args.layers)]
    protocol = dict(data.get("protocol") or {})
    if args.matrix_warmup is not None:
        protocol["warmup"] = args.matrix_warmup
    if args.matrix_iterations is not None:
        protocol["iterations"] = args.matrix_iterations
    data["protocol"] = protocol
    jobs = parse_matrix(data).expand()
    cells = [
        {
            "model": job.model.model_dump(exclude_defaults=True),
            "text": job.input_text,
            "batch": job.batch_size,
        }
        for job in jobs
    ]
    assert all(job.batching == "sequential" for job in jobs)
    matrix = write_yaml(tmp / "quick.yaml", data)
    print(
        f"\n== Part 2: examples/quick.yaml end to end, {len(jobs)} cells (pools collapsed to "
        f"one), {protocol['warmup']} + {protocol['iterations']} calls, "
        f"{args.matrix_rounds} round(s) ==\n"
        "Farm: `farm submit` to the last result (a fresh worker, model loads included); "
        "plain: one process, model loads included"
    )
    print(
        f"{'round':>5} {'plain s':>9} {'(load s':>8} {'calls s)':>9} {'Farm s':>9} "
        f"{'(setup s':>9} {'measure s':>10} {'other s)':>9} {'ratio':>7}"
    )
    ratios = []
    cell_means: dict[str, list[list[float]]] = {"plain": [], "farm": []}
    for i in range(args.matrix_rounds):
        walls: dict[str, float] = {}
        order = ["plain", "farm"] if i % 2 == 0 else ["farm", "plain"]
        for side in order:
            if side == "plain":
                plain = Plain(args.cpus, args.threads, args.plain_gc_off)
                try:
                    reply = plain.ask(
                        op="matrix",
                        cells=cells,
                        warmup=protocol["warmup"],
                        iterations=protocol["iterations"],
                    )
                finally:
                    plain.stop()
                walls["plain"] = reply["wall_s"]
                walls["plain_load"] = reply["load_s"]
                cell_means["plain"].append(reply["means_ms"])
            else:
                worker = start_worker(
                    services, "matrix", args.cpus, args.threads, tmp / f"worker-matrix-{i}.log"
                )
                try:
                    start = time.perf_counter()
                    rows = services.wait(services.submit(matrix), poll=0.1)
                    walls["farm"] = time.perf_counter() - start
                    walls["farm_setup"] = sum(r[2] for r in rows)
                    walls["farm_measure"] = sum(r[3] for r in rows)
                    cell_means["farm"].append([r[0] for r in rows])
                finally:
                    worker.stop()
        ratio = walls["farm"] / walls["plain"]
        ratios.append(ratio)
        other = walls["farm"] - walls["farm_setup"] - walls["farm_measure"]
        print(
            f"{i + 1:>5} {walls['plain']:>9.2f} {walls['plain_load']:>8.2f} "
            f"{walls['plain'] - walls['plain_load']:>9.2f} {walls['farm']:>9.2f} "
            f"{walls['farm_setup']:>9.2f} {walls['farm_measure']:>10.2f} {other:>9.2f} "
            f"{ratio:>7.3f}"
        )
    median = statistics.median(ratios)
    print(
        f"median wall-time ratio (Farm / plain): {median:.3f} (aim <= 1.15: "
        f"{'yes' if median <= 1.15 else 'no'})"
    )
    print("per cell, mean ms of each round (plain / Farm):")
    for c, job in enumerate(jobs):
        pairs = ", ".join(
            f"{p[c]:.2f} / {f[c]:.2f}"
            for p, f in zip(cell_means["plain"], cell_means["farm"], strict=True)
        )
        print(f"  {job.input_name:<6} batch {job.batch_size:<3} {pairs}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="part 1 rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=100, help="part 1 warm-up calls")
    parser.add_argument("--iterations", type=int, default=1000, help="part 1 timed calls")
    parser.add_argument("--layers", type=int, help="a smaller replica (default: all 6 layers)")
    parser.add_argument("--cpus", default="1", help="CPUs both sides are pinned to (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--matrix-rounds", type=int, default=2, help="part 2 rounds")
    parser.add_argument("--matrix-warmup", type=int, help="part 2 warm-up (default: the file's)")
    parser.add_argument("--matrix-iterations", type=int, help="part 2 timed calls (the file's)")
    parser.add_argument("--skip-part1", action="store_true")
    parser.add_argument("--skip-part2", action="store_true")
    parser.add_argument(
        "--plain-gc-off",
        action="store_true",
        help="turn GC off in the plain loop while timing, as Farm does (the blog left it on)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "FARM_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL URL whose server gets the scratch database",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("FARM_BROKER_URL", "redis://127.0.0.1:6379/0"),
        help=f"a Redis URL whose server is used (database {REDIS_DB})",
    )
    args = parser.parse_args()
    from farm.settings import parse_cpu_list

    if not args.postgres.startswith("postgresql"):
        parser.error("--postgres (or FARM_DATABASE_URL) must be a PostgreSQL URL")
    measured = parse_cpu_list(args.cpus)
    others = os.sched_getaffinity(0) - measured
    if others:  # this process and the `farm submit` it runs stay off the measured CPUs
        os.sched_setaffinity(0, others)
    print(
        f"measured CPUs {sorted(measured)}; this process and `farm submit` on "
        f"{sorted(others) if others else 'the same CPUs (no other CPU allowed)'}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    started = time.perf_counter()
    services = Services(args.postgres, args.redis)
    try:
        with tempfile.TemporaryDirectory(prefix="farm-overhead-") as name:
            tmp = Path(name)
            if not args.skip_part1:
                part_one(args, services, tmp)
            if not args.skip_part2:
                part_two(args, services, tmp)
    finally:
        services.close()
    print(f"\n(total {time.perf_counter() - started:.0f} s; scratch database {SCRATCH_DB} dropped)")


if __name__ == "__main__":
    main()
