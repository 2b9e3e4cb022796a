"""`farm calibrate`: a host's noise floor, from the same A/A cell measured twice on it.

Reports and `farm compare` treat differences smaller than this floor as not meaningful.
The use case is farm.app.calibrate; this parses and renders.
"""

from __future__ import annotations

import click
from rich.table import Table

from farm.cli.options import ProgressBar, pass_settings, wire
from farm.cli.render import stdout_console
from farm.settings import Settings


@click.command()
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
    farm = wire(settings)
    with ProgressBar() as bar:
        done = farm.calibrate(pool, iterations, warmup, timeout, bar)
    table = Table(title=f"noise floor of pool {pool} (campaign {done.campaign_id})")
    for col in (
        "worker",
        "host",
        "mean run 1 / 2 ms",
        "p99 run 1 / 2 ms",
        "mean noise",
        "p99 noise",
    ):
        table.add_column(col)
    for host in done.hosts:
        if host.runs is None:
            table.add_row(host.worker, host.host, "-", "-", "failed", "failed")
            continue
        a, b = host.runs
        table.add_row(
            host.worker,
            host.host,
            f"{a.mean_ms:.2f} / {b.mean_ms:.2f}",
            f"{a.p99_ms:.2f} / {b.p99_ms:.2f}",
            f"{host.mean_noise:.1%}",
            f"{host.p99_noise:.1%}",
        )
    stdout_console().print(table)
    click.echo(done.campaign_id)
