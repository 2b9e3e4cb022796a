"""`farm calibrate`: a host's noise floor, from the same A/A cell measured twice on it.

Reports and `farm compare` treat differences smaller than this floor as not meaningful.
"""

from __future__ import annotations

import click
from rich.table import Table

from farm.cli.main import cli
from farm.cli.options import pass_settings
from farm.cli.render import stdout_console
from farm.errors import FarmError
from farm.jobs import JobSpec, ModelSpec
from farm.protocol import Protocol
from farm.settings import Settings

# The fixed A/A cell: a real small model shipped in a package, the blog's short sentence.
CELL = {
    "model": ModelSpec(name="sentence-transformers/all-MiniLM-L6-v2"),
    "input_name": "short",
    "input_text": "This is a really nice pair of shoes, I am completely satisfied with my purchase",
    "batch_size": 1,
    "backend": "pytorch",
    "backend_options": {"dtype": "fp32"},
}


def relative_gap(a: float, b: float) -> float:
    return abs(a - b) / ((a + b) / 2) if a + b > 0 else 0.0


@cli.command()
@click.option("--pool", required=True, help="Calibrate every live worker of this pool.")
@click.option("--iterations", type=click.IntRange(10, 100_000), default=300, show_default=True)
@click.option("--warmup", type=click.IntRange(0, 10_000), default=30, show_default=True)
@click.option(
    "--timeout",
    type=click.IntRange(1),
    default=1800,
    show_default=True,
    help="Seconds to wait for the runs.",
)
@pass_settings
def calibrate(settings: Settings, pool: str, iterations: int, warmup: int, timeout: int) -> None:
    """Run a fixed A/A cell twice on each live worker of POOL and record its noise floor."""
    from farm.cli.commands import wait_for_campaign
    from farm.db import repo
    from farm.db.session import check_database, session_factory, transaction
    from farm.workers.app import check_broker, create_app, enqueue_jobs

    check_database(settings.database_url)
    app = create_app(settings)
    check_broker(app, settings.broker_url)
    factory = session_factory(settings.database_url)
    with transaction(factory) as session:
        workers = [w for w in repo.live_workers(session, settings.worker_ttl_s) if w.pool == pool]
    if not workers:
        raise FarmError(
            f"no live worker in pool {pool!r}; start one with `farm worker --pool {pool}`"
        )
    protocol = Protocol(warmup=warmup, iterations=iterations)
    specs = [
        JobSpec(**CELL, pool=pool, protocol=protocol, repeat=r, worker=w.name)  # type: ignore[arg-type]
        for w in workers
        for r in (0, 1)
    ]
    with transaction(factory) as session:
        campaign = repo.create_campaign(session, f"calibrate-{pool}", {"calibrate": pool}, specs)
        ids = [(job.id, job.queue) for job in campaign.jobs]
        campaign_id = campaign.id
    enqueue_jobs(app, ids)
    wait_for_campaign(factory, campaign_id, len(ids), timeout=timeout)
    table = Table(title=f"noise floor of pool {pool} (campaign {campaign_id})")
    for col in (
        "worker",
        "host",
        "mean run 1 / 2 ms",
        "p99 run 1 / 2 ms",
        "mean noise",
        "p99 noise",
    ):
        table.add_column(col)
    with transaction(factory) as session:
        for worker in workers:
            runs = [j for j in repo.campaign_jobs(session, campaign_id) if j.worker == worker.name]
            results = [j.result for j in runs if j.result is not None]
            if len(results) != 2:
                table.add_row(worker.name, worker.hostname, "-", "-", "failed", "failed")
                continue
            a, b = results
            mean_noise, p99_noise = (
                relative_gap(a.mean_ms, b.mean_ms),
                relative_gap(a.p99_ms, b.p99_ms),
            )
            repo.record_calibration(
                session,
                pool=pool,
                worker=worker.name,
                host=worker.hostname,
                mean_noise=mean_noise,
                p99_noise=p99_noise,
                jobs=[j.id for j in runs],
            )
            table.add_row(
                worker.name,
                worker.hostname,
                f"{a.mean_ms:.2f} / {b.mean_ms:.2f}",
                f"{a.p99_ms:.2f} / {b.p99_ms:.2f}",
                f"{mean_noise:.1%}",
                f"{p99_noise:.1%}",
            )
    stdout_console().print(table)
    click.echo(campaign_id)
