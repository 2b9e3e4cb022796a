"""`farm export`: campaigns as files for other tools — pandas, spreadsheets, Bencher."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from farm.cli.options import open_reports, pass_settings
from farm.cli.reports import filter_options, make_filters, write_output
from farm.settings import Settings


@click.command()
@click.argument("campaigns", nargs=-1, required=True)
@click.option(
    "--cells", "what", flag_value="cells", default=True, help="One row per cell (default)."
)
@click.option("--jobs", "what", flag_value="jobs", help="One row per job.")
@click.option(
    "--raw", "what", flag_value="raw", help="One CSV row per timed call: the raw samples."
)
@click.option(
    "--bmf", "what", flag_value="bmf", help="Bencher Metric Format JSON (latency, throughput)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="For --cells and --jobs.",
)
@filter_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True))
@pass_settings
def export(
    settings: Settings,
    campaigns: tuple[str, ...],
    what: str,
    fmt: str,
    output: str | None,
    **filter_kwargs: Any,
) -> None:
    """Export CAMPAIGNS: cells or jobs (CSV/JSON, pandas-ready), raw samples, or BMF.

    --bmf writes {benchmark: {"latency": {"value", "lower_value", "upper_value"},
    "throughput": {...}}}: latency in ns (mean and its 95 % interval), throughput in
    sequences per second, one benchmark per cell ("model/input/batch N/backend@pool").
    """
    from farm.app.reports import job_rows, raw_jobs, report, write_raw
    from farm.reports.exports import bencher_metric_format, render_csv, report_tidy_rows

    filters = make_filters(filter_kwargs)
    if what == "raw" and fmt == "json":
        raise click.UsageError("--raw writes CSV (one row per sample)")
    with open_reports(settings) as queries:
        if what == "jobs":
            rows = job_rows(queries, campaigns, filters)
            text = (
                json.dumps(rows, indent=2, default=str) + "\n"
                if fmt == "json"
                else render_csv(rows)
            )
            write_output(text, output)
            return
        if what == "raw":
            with_results = raw_jobs(queries, campaigns, filters)
            if output is None:
                count = write_raw(queries, with_results, sys.stdout)
            else:
                with open(output, "w", encoding="utf-8", newline="") as fh:
                    count = write_raw(queries, with_results, fh)
                click.echo(f"wrote {output}: {count} samples", err=True)
            return
        rep = report(queries, campaigns, filters, checks=what == "cells")
    if what == "bmf":
        bmf = bencher_metric_format(rep.cells)
        write_output(json.dumps(bmf, indent=2) + "\n", output)
        return
    rows = report_tidy_rows(rep)
    write_output(json.dumps(rows, indent=2) + "\n" if fmt == "json" else render_csv(rows), output)
