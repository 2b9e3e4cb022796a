"""`farm pools`: the pools and their hourly prices (what reports' cost is made of)."""

from __future__ import annotations

import re

import click
from rich.table import Table

from farm.cli.options import pass_settings, wire_store
from farm.cli.render import stdout_console
from farm.matrix import NAME_PATTERN
from farm.settings import Settings


def _pool_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise click.BadParameter("only letters, digits, '.', '_' and '-' (1 to 100 characters)")
    return value


def _currency(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise click.BadParameter("a three-letter code such as USD or EUR")
    return value.upper()


@click.group(invoke_without_command=True)
@click.pass_context
@pass_settings
def pools(settings: Settings, ctx: click.Context) -> None:
    """Pools (from jobs, workers and prices) with their hourly price; see `pools price`."""
    if ctx.invoked_subcommand is not None:
        return
    from farm.db.pools import list_pools

    with wire_store(settings).transaction() as session:
        rows = list_pools(session)
    table = Table()
    for col in ("pool", "price / hour", "currency", "workers", "priced (UTC)"):
        table.add_column(col, justify="right" if col in ("price / hour", "workers") else "left")
    for r in rows:
        updated = r["updated_at"]
        table.add_row(
            str(r["pool"]),
            "-" if r["price_per_hour"] is None else f"{r['price_per_hour']:.4g}",
            str(r["currency"] or "-"),
            str(r["workers"]),
            updated.strftime("%Y-%m-%d %H:%M") if updated is not None else "-",  # type: ignore[attr-defined]
        )
    stdout_console().print(table)
    if not rows:
        click.echo("no pools yet: they appear with the first job or worker", err=True)


@pools.command("price")
@click.argument("pool", callback=_pool_name)
@click.argument("price_per_hour", type=click.FloatRange(0, 1e6))
@click.option(
    "--currency", default="USD", show_default=True, callback=_currency, help="ISO 4217 code."
)
@pass_settings
def price(settings: Settings, pool: str, price_per_hour: float, currency: str) -> None:
    """Set POOL's price per hour for what one of its workers occupies (e.g. one VM)."""
    from farm.db.pools import set_price

    with wire_store(settings).transaction() as session:
        set_price(session, pool, price_per_hour, currency)
    click.echo(f"{pool}: {price_per_hour:g} {currency} per hour")


@pools.command("unprice")
@click.argument("pool", callback=_pool_name)
@pass_settings
def unprice(settings: Settings, pool: str) -> None:
    """Forget POOL's price."""
    from farm.db.pools import clear_price

    with wire_store(settings).transaction() as session:
        found = clear_price(session, pool)
    if not found:
        raise click.ClickException(f"pool {pool!r} has no price")
    click.echo(f"{pool}: no price")
