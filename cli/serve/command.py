"""`farm serve`: the dashboard on this host, read-only, over the CLI's database."""

from __future__ import annotations

import os
from pathlib import Path

import click

from farm.cli.options import pass_settings
from farm.cli.serve.binding import TOKEN_ENV, is_loopback
from farm.settings import Settings, mask_url


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help=f"Address to listen on; any but loopback needs {TOKEN_ENV}.")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@pass_settings
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the live, read-only dashboard: campaigns, the blog table and chart, jobs,
    compare, hosts and pools, trends, and the same JSON as the CLI under /api/.

    On loopback (the default) anyone on this machine may read it. Any other address needs
    the environment variable FARM_SERVE_TOKEN: every request must then carry it, as
    `Authorization: Bearer TOKEN` or once as `?token=TOKEN` (which sets a cookie).
    """
    import uvicorn

    from farm.cli.serve.app import create_app
    from farm.db.session import check_database
    from farm.errors import FarmError

    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is None and not is_loopback(host):
        raise click.UsageError(
            f"--host {host} is reachable from other machines: set {TOKEN_ENV} to a secret "
            "every request must carry (or bind 127.0.0.1)"
        )
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise click.UsageError(
            f"no database at {mask_url(url)}: run a campaign first (`make demo` writes "
            "farm-demo.db) or give --database-url"
        )
    try:
        check_database(url)
    except FarmError as exc:  # the server starts anyway: its pages say so until it is up
        click.echo(f"warning: {exc}", err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"farm serve: http://{shown}:{port}/ reading {mask_url(url)}"
               + (" (token required)" if token else ""), err=True)  # fmt: skip
    uvicorn.run(create_app(settings, token), host=host, port=port, log_level="warning",
                access_log=False)  # fmt: skip
