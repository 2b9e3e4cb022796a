"""`farm flower`: watch the farm's workers and tasks in Flower."""

from __future__ import annotations

import click

from farm.cli.options import pass_settings
from farm.settings import Settings


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface; then set FLOWER_BASIC_AUTH).",
)
@click.argument("flower_options", nargs=-1, type=click.UNPROCESSED)
@pass_settings
def flower(settings: Settings, port: int, address: str, flower_options: tuple[str, ...]) -> None:
    """Run Flower (Celery's web monitor) on Farm's broker: its workers, tasks and queues.

    FLOWER_OPTIONS are passed to Flower as they are (e.g. --url_prefix=flower); so are
    FLOWER_* environment variables. Its HTTP API answers with FLOWER_BASIC_AUTH set, or
    FLOWER_UNAUTHENTICATED_API=true (loopback only).
    """
    from farm.workers.monitor import run_flower

    raise SystemExit(run_flower(settings, port, address, list(flower_options)))
