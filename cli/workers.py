"""Worker-side commands: `farm worker` and `farm hosts`."""

from __future__ import annotations

import click
from rich.table import Table

from farm.cli.calibrate import gflops_text
from farm.cli.options import parse_cpus_option, pass_settings, pinning_options, wire_store
from farm.cli.render import stdout_console
from farm.flops import DTYPES
from farm.hardware import mixed_pools
from farm.matrix import NAME_PATTERN
from farm.settings import Settings
from farm.stacks import ALLOCATORS
from farm.workers.cpuclaim import DEFAULT_DIR as CPU_LOCK_DIR


def _check_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    import re

    if value is not None and not re.fullmatch(NAME_PATTERN, value):
        raise click.BadParameter("only letters, digits, '.', '_' and '-' (1 to 100 characters)")
    return value


@click.command()
@click.option(
    "--pool",
    required=True,
    callback=_check_name,
    help="The hardware pool this host belongs to (e.g. icelake).",
)
@click.option("--name", help="Worker name [default: POOL@HOSTNAME]; unique per worker.")
@pinning_options
@click.option(
    "--allocator",
    type=click.Choice(ALLOCATORS),
    default="default",
    show_default=True,
    help="Preload this allocator (the worker re-executes itself with LD_PRELOAD).",
)
@click.option(
    "--claim",
    type=click.IntRange(1, 4096),
    help="Pin to this many of --cpus (default: all allowed) that no other worker sharing "
    "FARM_CPU_LOCK_DIR holds: replicas started alike get disjoint CPUs.",
)
@click.option(
    "--claim-dir",
    envvar="FARM_CPU_LOCK_DIR",
    show_envvar=True,
    default=CPU_LOCK_DIR,
    show_default=True,
    help="Folder of the CPU lock files, shared by the workers of one machine.",
)
@click.option("--loglevel", default="INFO", show_default=True)
@pass_settings
def worker(
    settings: Settings,
    pool: str,
    name: str | None,
    cpus: str | None,
    threads: int | None,
    allocator: str,
    claim: int | None,
    claim_dir: str,
    loglevel: str,
) -> None:
    """Serve the pool's queue: one job at a time, pinned to CPUS with THREADS threads."""
    from farm.workers.worker import run_worker

    raise SystemExit(
        run_worker(settings, pool, name, parse_cpus_option(cpus), threads, loglevel, allocator,
                   claim, claim_dir)  # fmt: skip
    )


COLUMNS = ("worker", "pool", "host", "hardware class (CPU)", "features", "stack", "allocator",
           "cpus", "threads", "peak fp32 / bf16 GFLOP/s", "last seen", "live")  # fmt: skip
SHOWN_FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512_fp16")


@click.group(invoke_without_command=True)
@pass_settings
@click.pass_context
def hosts(ctx: click.Context, settings: Settings) -> None:
    """Registered workers: pool, host, CPU, pinning and when each was last seen.

    `farm hosts drain NAME` stops a worker (or every worker of a host) after its job in hand.
    """
    if ctx.invoked_subcommand is not None:
        return
    from farm.db import repo
    from farm.db.clock import db_now
    from farm.db.models import as_utc

    with wire_store(settings).transaction() as session:
        workers = repo.list_workers(session)
        now = db_now(session)  # "last seen" is the database's time, as the heartbeats are
        live_names = {w.name for w in repo.live_workers(session, settings.worker_ttl_s)}
    table = Table()
    for col in COLUMNS:
        table.add_column(col, no_wrap=col in ("worker", "live"))
    live: list[tuple[str, str | None]] = []
    for w in workers:
        age = (now - as_utc(w.last_seen)).total_seconds()
        alive = w.name in live_names
        if alive:
            live.append((w.pool, w.hardware_class))
        on = [f for f, present in w.fingerprint.get("flags", {}).items() if present]
        table.add_row(
            w.name,
            w.pool,
            w.hostname,
            f"{w.hardware_class or '?'} ({w.fingerprint.get('cpu_model', '?')})",
            " ".join(f for f in on if f in SHOWN_FLAGS) or "-",
            w.fingerprint.get("stack", "main"),
            w.allocator or "default",
            w.cpus or "-",
            str(w.threads or "-"),
            " / ".join(gflops_text((w.peak or {}).get(f"{d}_gflops")) for d in DTYPES),
            f"{age:.0f} s ago",
            _live(alive, w.stopped_at is not None, w.drain_requested_at is not None),
        )
    console = stdout_console()
    console.print(table)
    for pool, classes in sorted(mixed_pools(live).items()):
        console.print(
            f"[yellow]warning:[/yellow] pool {pool!r} mixes hardware classes: "
            f"{', '.join(sorted(classes))}"
        )


def _live(live: bool, stopped: bool, drain: bool) -> str:
    if stopped:
        return "no (drained)" if drain else "no (stopped)"
    if drain:
        return "draining" if live else "no"
    return "yes" if live else "no"


@hosts.command()
@click.argument("name")
@pass_settings
def drain(settings: Settings, name: str) -> None:
    """Stop worker NAME, or every worker of host NAME, after its job in hand.

    Each takes no new job, finishes and writes the one it runs, and exits 0 (within
    FARM_WORKER_HEARTBEAT seconds of its job's end); what it did not start stays queued
    for the pool's other workers. A worker started again under the name serves normally.
    """
    from farm.db import repo
    from farm.db.clock import db_now
    from farm.db.models import as_utc

    lines = []
    with wire_store(settings).transaction() as session:
        now = db_now(session)
        for w in repo.request_drain(session, name):
            age = (now - as_utc(w.last_seen)).total_seconds()
            note = (" (stopped already)" if w.stopped_at is not None
                    else f" (not seen for {age:.0f} s)" if age > settings.worker_ttl_s
                    else "")  # fmt: skip
            lines.append(f"draining {w.name} (pool {w.pool}, host {w.hostname}){note}")
    click.echo("\n".join(lines))  # once the marks are committed
