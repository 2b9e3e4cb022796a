"""`farm export`: campaigns as files for other tools — pandas, spreadsheets, Bencher."""

from __future__ import annotations

import csv
import json
import sys
from typing import IO, Any

import click

from farm.cli.main import cli
from farm.cli.options import pass_settings
from farm.cli.reports import filter_options, make_filters, write_output
from farm.settings import Settings

RAW_KEYS = (
    "campaign", "job", "model", "input", "tokens", "batch_size", "batching", "backend",
    "backend_options", "allocator", "pool", "host", "worker", "sample", "latency_ms",
)  # fmt: skip


@cli.command()
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
    from farm.db.report import build_report, report_rows, require_cells, resolve_campaigns
    from farm.db.session import check_database, session_factory, transaction
    from farm.reporting import bencher_metric_format, tidy_rows

    filters = make_filters(filter_kwargs)
    if what == "raw" and fmt == "json":
        raise click.UsageError("--raw writes CSV (one row per sample)")
    check_database(settings.database_url)
    with transaction(session_factory(settings.database_url)) as session:
        if what == "jobs":
            found = resolve_campaigns(session, campaigns)
            rows = report_rows(session, [cid for cid, _ in found], filters)
            text = (
                json.dumps(rows, indent=2, default=str) + "\n"
                if fmt == "json"
                else _csv(rows)
            )
            write_output(text, output)
            return
        if what == "raw":
            found = resolve_campaigns(session, campaigns)
            rows = report_rows(session, [cid for cid, _ in found], filters)
            with_results = [r for r in rows if r["n"]]
            if not with_results:
                require_cells(session, found, [], filters)  # no jobs / no match: say which
                raise click.ClickException("no results to export yet; `farm status` tells more")
            if output is None:
                count = _write_raw(session, with_results, sys.stdout)
            else:
                with open(output, "w", encoding="utf-8", newline="") as fh:
                    count = _write_raw(session, with_results, fh)
                click.echo(f"wrote {output}: {count} samples", err=True)
            return
        rep = build_report(session, campaigns, filters)
    if what == "bmf":
        bmf = bencher_metric_format(rep.table.cells.values())
        write_output(json.dumps(bmf, indent=2) + "\n", output)
        return
    rows = tidy_rows(rep.table)
    write_output(json.dumps(rows, indent=2) + "\n" if fmt == "json" else _csv(rows), output)


def _csv(rows: list[dict[str, Any]]) -> str:
    from farm.cli.render import render_csv

    return render_csv(rows)


def _write_raw(session: Any, rows: list[dict[str, Any]], out: IO[str]) -> int:
    """One line per sample, job by job (samples loaded in chunks, decoded one job at a time)."""
    import numpy as np

    from farm.db.report import load_samples
    from farm.stats import NS_PER_MS, decode_samples

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RAW_KEYS)
    by_job = {r["job"]: r for r in rows}
    count = 0
    for job_id, blob in load_samples(session, by_job):
        r = by_job[job_id]
        options = json.dumps(r["backend_options"], sort_keys=True)
        fixed = (
            r["campaign"], job_id, r["model"], r["input"], r["tokens"], r["batch_size"],
            r["batching"], r["backend"], options, r["allocator"], r["pool"], r["host"],
            r["worker"],
        )  # fmt: skip
        values = decode_samples(blob).astype(np.float64) / NS_PER_MS
        writer.writerows((*fixed, i, repr(float(v))) for i, v in enumerate(values))
        count += values.size
    return count
