"""What several commands share, declared once: options, the wiring, the progress bar."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from farm.app.ports import LocalRunner
from farm.app.service import Farm
from farm.matrix import DEFAULT_MAX_JOBS, load_matrix
from farm.nogc import no_gc
from farm.protocol import PROFILES
from farm.settings import DEFAULT_BROKER_URL, DEFAULT_DATABASE_URL, Settings, parse_cpu_list

if TYPE_CHECKING:  # rich.progress loads when a bar is drawn, not for every command
    from rich.progress import Progress, TaskID

    from farm.db.campaigns import SqlCampaignStore
    from farm.db.reports import SqlReports

F = Callable[..., Any]


def pass_settings(fn: F) -> F:
    """--database-url/--broker-url (or their env vars) → a Settings as the first argument."""

    @functools.wraps(fn)
    def wrapper(*args: Any, database_url: str | None, broker_url: str | None, **kwargs: Any) -> Any:
        settings = Settings.from_env(database_url=database_url, broker_url=broker_url)
        return fn(settings, *args, **kwargs)

    wrapper = click.option(
        "--broker-url",
        envvar="FARM_BROKER_URL",
        show_envvar=True,
        help=f"Celery broker URL [default: {DEFAULT_BROKER_URL}]",
    )(wrapper)
    return click.option(
        "--database-url",
        envvar="FARM_DATABASE_URL",
        show_envvar=True,
        help=f"SQLAlchemy URL of the results database [default: {DEFAULT_DATABASE_URL}]",
    )(wrapper)


def matrix_options(fn: F) -> F:
    """MATRIX plus protocol overrides; the command receives the validated `spec` and `jobs`."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        matrix: str,
        warmup: int | None,
        iterations: int | None,
        profile: str | None,
        target_ci: float | None,
        max_jobs: int,
        **kwargs: Any,
    ) -> Any:
        with no_gc():  # up to 10,000 specs, no cycles
            spec = load_matrix(
                matrix, warmup=warmup, iterations=iterations, profile=profile, target_ci=target_ci
            )
            jobs = spec.expand(max_jobs=max_jobs)
        return fn(*args, spec=spec, jobs=jobs, **kwargs)

    options = [
        click.argument("matrix", type=click.Path(dir_okay=False)),
        click.option(
            "--profile",
            type=click.Choice(sorted(PROFILES)),
            help="Measure with this protocol profile instead of the matrix's "
            "(seed: 100 + 1,000 calls; quick; adaptive: until p99 is known to ±2 %).",
        ),
        click.option(
            "--warmup", type=click.IntRange(0, 100_000), help="Override the warm-up calls."
        ),
        click.option(
            "--iterations", type=click.IntRange(1, 1_000_000), help="Override the timed calls."
        ),
        click.option(
            "--target-ci",
            type=click.FloatRange(0.001, 0.5),
            help="Adaptive: measure until the percentile's 95 % CI is within ± this fraction.",
        ),
        click.option(
            "--max-jobs",
            type=click.IntRange(1),
            default=DEFAULT_MAX_JOBS,
            show_default=True,
            help="Refuse a matrix that expands to more jobs.",
        ),
    ]
    decorated: F = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def pinning_options(fn: F) -> F:
    fn = click.option(
        "--threads",
        type=click.IntRange(1, 1024),
        help="torch/OpenMP threads [default: one per allowed CPU].",
    )(fn)
    return click.option("--cpus", help="CPUs to pin to, e.g. 0-3,8 [default: all allowed].")(fn)


def parse_cpus_option(text: str | None) -> set[int] | None:
    if not text:
        return None
    try:
        cpus = parse_cpu_list(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cpus") from None
    unknown = cpus - os.sched_getaffinity(0)
    if unknown:
        raise click.BadParameter(
            f"CPUs {sorted(unknown)} are not available here (allowed: "
            f"{sorted(os.sched_getaffinity(0))})",
            param_hint="--cpus",
        )
    return cpus


def wire(settings: Settings) -> Farm:
    """The application object for one command: the database checked once, the SQL store
    and the Celery broker adapter (which connects only when a use case sends)."""
    from farm.workers.broker import CeleryBroker

    return Farm(settings, wire_store(settings), CeleryBroker(settings))


def wire_embedded(settings: Settings) -> tuple[Farm, LocalRunner]:
    """`farm run`: the SQL store and the in-process runner, no broker. The database is not
    checked first: the runner creates and migrates it (./farm.db on first use)."""
    from farm.db.campaigns import SqlCampaignStore
    from farm.workers.embedded import EmbeddedRunner

    return Farm(settings, SqlCampaignStore(settings.database_url)), EmbeddedRunner(settings)


def wire_store(settings: Settings) -> SqlCampaignStore:
    """The SQL job store, after checking that the database is up and migrated."""
    from farm.db.campaigns import SqlCampaignStore
    from farm.db.session import check_database

    check_database(settings.database_url)
    return SqlCampaignStore(settings.database_url)


def open_reports(settings: Settings) -> SqlReports:
    """The report queries on the settings' database (checked first), for one `with` block."""
    from farm.db.reports import SqlReports
    from farm.db.session import check_database, session_factory

    check_database(settings.database_url)
    return SqlReports(session_factory(settings.database_url))


class ProgressBar:
    """A progress bar on stderr, started on the first report (farm.app.ports.OnProgress).

    `quiet=True` (embedded `farm run`, whose jobs measure in this process) draws only when
    a report comes, between jobs: no refresh thread wakes beside the timed calls."""

    def __init__(self, quiet: bool = False) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.quiet = quiet

    def __call__(self, campaign_id: int, done: int, failed: int | None, total: int) -> None:
        """Failed jobs are counted in the description unless `failed` is None."""
        if self.progress is None or self.task is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                auto_refresh=not self.quiet,
            )
            self.progress.start()
            self.task = self.progress.add_task(f"campaign {campaign_id}", total=total)
        self.progress.update(self.task, completed=done)
        if failed is not None:
            self.progress.update(self.task, description=f"campaign {campaign_id} ({failed} failed)")
        if self.quiet:
            self.progress.refresh()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        if self.progress is not None:
            self.progress.stop()
