"""`farm calibrate`: a host's noise floor, from the same A/A cell measured twice on it;
with `--peak`, each worker's GEMM peak (the roof efficiency is read against).

Reports and `farm compare` treat differences smaller than this floor as not meaningful.
The use case is farm.app.calibrate; this parses and renders.
"""

from __future__ import annotations

import click
from rich.table import Table

from farm.app.calibrate import HostPeak
from farm.cli.options import ProgressBar, pass_settings, wire
from farm.cli.render import stdout_console
from farm.settings import Settings, parse_sizes


def _sizes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...]:
    try:
        return parse_sizes(value) if value else ()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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
@click.option(
    "--peak",
    is_flag=True,
    help="Measure each worker's fp32/bf16 GEMM peak instead (stored, shown by `farm hosts`).",
)
@click.option(
    "--sizes",
    callback=_sizes,
    help="--peak: square matrix sizes, e.g. 1024,2048 [default: FARM_PEAK_SIZES or 512,1024,2048].",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 100),
    help="--peak: timed products per size, the best counts [default: FARM_PEAK_REPEATS or 3].",
)
@pass_settings
def calibrate(
    settings: Settings,
    pool: str,
    iterations: int,
    warmup: int,
    timeout: int,
    peak: bool,
    sizes: tuple[int, ...],
    repeats: int | None,
) -> None:
    """Run a fixed A/A cell twice on each live worker of POOL and record its noise floor;
    with --peak, have each live worker of POOL measure and store its GEMM peak."""
    farm = wire(settings)
    if peak:
        sizes, repeats = sizes or settings.peak_sizes, repeats or settings.peak_repeats
        _peak_table(pool, farm.calibrate_peak(pool, sizes, repeats, timeout))
        return
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


def _peak_table(pool: str, peaks: list[HostPeak]) -> None:
    table = Table(title=f"GEMM peak of pool {pool}")
    for col in ("worker", "host", "cpus", "threads", "fp32 GFLOP/s", "bf16 GFLOP/s", "sizes"):
        table.add_column(col)
    for host in peaks:
        p = host.peak
        if p is None:
            table.add_row(host.worker, host.host, "-", "-", "no answer", "no answer", "-")
            continue
        table.add_row(
            host.worker,
            host.host,
            str(p.get("cpus")),
            str(p.get("threads")),
            gflops_text(p.get("fp32_gflops")),
            gflops_text(p.get("bf16_gflops")),
            ",".join(map(str, p.get("sizes") or [])),
        )
    stdout_console().print(table)
    if any(h.peak is None for h in peaks):
        raise click.ClickException("some workers did not answer before --timeout")


def gflops_text(value: object) -> str:
    """A peak as `farm calibrate --peak` and `farm hosts` show it ("-": not measured)."""
    return f"{value:.1f}" if isinstance(value, int | float) else "-"
