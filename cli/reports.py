"""`farm report` and `farm compare`: the tables people compare, and comparisons with verdicts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from farm.cli.options import open_reports, pass_settings
from farm.cli.render import stdout_console
from farm.jobs import MEASURES, TASKS
from farm.settings import Settings

if TYPE_CHECKING:  # numpy and SQLAlchemy load when a command runs, not for `farm --help`
    from farm.reports.selectors import Filters

F = Callable[..., Any]
REGRESSION_EXIT = 3  # `farm compare --fail-on-regression` found a significant slowdown


def filter_options(fn: F) -> F:
    """--model/--input/--batch/--backend/--pool/--stack/--measure/--task, each repeatable:
    keep only these cells."""
    for flag, kind, what in reversed(
        (
            ("--model", str, "a model label, e.g. distilbert-base-uncased"),
            ("--input", str, "an input name"),
            ("--batch", click.IntRange(1), "a batch size"),
            ("--backend", str, "a backend name"),
            ("--pool", str, "a pool"),
            ("--stack", str, "a software stack (`ipex`, or one lock of it: `ipex@LOCK`)"),
            ("--measure", click.Choice(MEASURES), "a measure (what a timed call covers)"),
            ("--task", click.Choice(TASKS), "a task (campaigns of several reported together)"),
        )
    ):
        fn = click.option(flag, multiple=True, type=kind, help=f"Only {what} (repeatable).")(fn)
    return fn


def make_filters(kwargs: dict[str, Any]) -> Filters:
    from farm.reports.selectors import Filters

    return Filters(
        models=tuple(kwargs.pop("model")),
        inputs=tuple(kwargs.pop("input")),
        batches=tuple(kwargs.pop("batch")),
        backends=tuple(kwargs.pop("backend")),
        pools=tuple(kwargs.pop("pool")),
        stacks=tuple(kwargs.pop("stack")),
        measures=tuple(kwargs.pop("measure")),
        tasks=tuple(kwargs.pop("task")),
    )


def write_output(text: str | bytes, output: str | None) -> None:
    if output is None:
        if isinstance(text, bytes):
            raise click.UsageError("this format is binary: give -o FILE")
        click.echo(text, nl=False)
        return
    if isinstance(text, bytes):
        with open(output, "wb") as bfh:
            bfh.write(text)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    click.echo(f"wrote {output}", err=True)


def parse_selector_option(value: str | None, flag: str) -> dict[str, str] | None:
    from farm.reports.cells import ReportError
    from farm.reports.selectors import parse_selector

    if value is None:
        return None
    try:
        return parse_selector(value, flag)
    except ReportError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


@click.command()
@click.argument("campaigns", nargs=-1, required=True)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(
        ["mean", "p50", "p90", "p99", "min", "max", "std", "throughput", "gflops", "efficiency",
         "ttft", "ttft_p99", "tpot", "tpot_p99", "tokens_per_s"]  # farm.reports.cells.METRICS
    ),  # fmt: skip
    help="What each cell shows (repeatable, in order) [default: mean and p99; text "
    "generation adds ttft, ttft_p99, tpot, tpot_p99 and tokens_per_s].",
)
@filter_options
@click.option(
    "--baseline",
    metavar="SELECTOR",
    help="Add speed-up columns against this column, row by row: e.g. "
    "'backend=pytorch,pool=icelake' (keys: backend, pool, allocator or a backend option), "
    "or a column as the report prints it, e.g. 'pytorch(dtype=fp32)@icelake'.",
)
@click.option("--cost", is_flag=True, help="Add each cell's cost per million inferences.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json", "html"]),
    default="table",
    show_default=True,
    help="table/markdown/html: the blog's layout; csv: one line per cell (pandas-ready); "
    "json: one object per job.",
)
@click.option(
    "--per-job", is_flag=True, help="csv: one line per job (the raw report) rather than per cell."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@pass_settings
def report(
    settings: Settings,
    campaigns: tuple[str, ...],
    metrics: tuple[str, ...],
    baseline: str | None,
    cost: bool,
    fmt: str,
    per_job: bool,
    output: str | None,
    **filter_kwargs: Any,
) -> None:
    """The blog's table for CAMPAIGNS (ids or names): rows model × input × batch, columns
    backend@pool, cells mean / p99 ms, with validity flags, speed-ups and cost if asked;
    a table per task, each with its own metrics (text generation: TTFT, TPOT, tokens/s).

    Several campaigns are reported together: a cell measured by several jobs shows the
    statistics of their pooled raw samples.
    """
    from farm.app.reports import job_rows
    from farm.app.reports import report as make_report

    filters = make_filters(filter_kwargs)
    base = parse_selector_option(baseline, "--baseline")
    if fmt == "json" or (fmt == "csv" and per_job):
        if base or metrics:
            raise click.UsageError(
                "--baseline and --metric shape the per-cell views; per-job output has every "
                "job's own numbers"
            )
    elif per_job:
        raise click.UsageError("--per-job goes with --format csv (json is always per job)")
    with open_reports(settings) as queries:
        if fmt == "json" or per_job:
            from farm.reports.exports import render_jobs

            rows = job_rows(queries, campaigns, filters, cost)
            write_output(render_jobs(rows, fmt), output)
            return
        rep = make_report(queries, campaigns, filters, metrics or None, base, cost, True)
    if not rep.has_results:
        click.echo(f"{rep.title} has no results yet; `farm status` tells more", err=True)
    if fmt == "table":
        from farm.cli.render import print_wide

        if output:
            from rich.console import Console

            with open(output, "w", encoding="utf-8") as fh:
                print_wide(rep, Console(file=fh, width=250, no_color=True))
            click.echo(f"wrote {output}", err=True)
        else:
            print_wide(rep, stdout_console())
    elif fmt == "markdown":
        from farm.reports.text import render_markdown

        write_output(render_markdown(rep), output)
    elif fmt == "csv":
        from farm.reports.exports import render_csv, report_tidy_rows

        write_output(render_csv(report_tidy_rows(rep, cost)), output)
    else:
        from farm.cli.render import chart_images
        from farm.reports.text import render_html

        shown = {m for t in rep.tables for m in t.metrics}
        images = chart_images(rep.tables, "p99" if "p99" in shown else None)
        write_output(render_html(rep, images), output)


def _pair_option(value: str | None, flag: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
    if value is None:
        return {}, {}
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter(f"expected two {key}s separated by a comma", param_hint=flag)
    return {key: parts[0]}, {key: parts[1]}


def _threshold(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter("a fraction (0.05) or a percentage (5%)") from None
    if not 0 <= number < 1:
        raise click.BadParameter("between 0 and 1 (or 0% and 100%)")
    return number


@click.command()
@click.argument("a")
@click.argument("b", required=False)
@click.option("--a", "a_sel", metavar="SELECTOR", help="Narrow side A, e.g. 'pool=icelake'.")
@click.option("--b", "b_sel", metavar="SELECTOR", help="Narrow side B, e.g. 'pool=zen4'.")
@click.option("--pools", metavar="A,B", help="Shorthand for --a pool=A --b pool=B.")
@click.option("--backends", metavar="A,B", help="Shorthand for --a backend=A --b backend=B.")
@click.option(
    "--metric",
    type=click.Choice(["mean", "p50", "p90", "p99"]),
    default="mean",
    show_default=True,
    help="The statistic whose ratio B/A is the effect.",
)
@click.option(
    "--threshold",
    callback=_threshold,
    help="Smallest effect that counts, e.g. 0.05 or 5% [default: the pools' calibrated "
    "noise floor when known, else 3%].",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Significance level of the Mann-Whitney U test.",
)
@filter_options
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Show (and test) at most this many cells, the largest effects; 0: all.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True))
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help=f"Exit with status {REGRESSION_EXIT} when any cell is significantly slower in B.",
)
@pass_settings
def compare(
    settings: Settings,
    a: str,
    b: str | None,
    a_sel: str | None,
    b_sel: str | None,
    pools: str | None,
    backends: str | None,
    metric: str,
    threshold: float | None,
    alpha: float,
    limit: int,
    fmt: str,
    output: str | None,
    fail_on_regression: bool,
    **filter_kwargs: Any,
) -> None:
    """Compare the same cells in A and B: ratio B/A, Mann-Whitney U test, verdict.

    A and B are campaigns (B defaults to A); --a/--b narrow each side, so one campaign's
    two pools or backends compare too. Cells match on model weights, input text, batch,
    batching, backend and options, allocator, measure mode, pool and software stack, less
    what the selectors vary (--a stack=main --b stack=ipex: the same cells across stacks).
    A verdict needs p < ALPHA and an effect above the threshold: faster, slower, or no
    significant difference. Text generation cells are compared on TTFT and TPOT too (the
    same statistic of their per-call values), a verdict each.
    """
    from farm.app.reports import compare as do_compare
    from farm.cli.render import print_compare
    from farm.reports.exports import compare_rows, render_csv
    from farm.reports.text import render_compare_markdown

    filters = make_filters(filter_kwargs)
    sel_a = parse_selector_option(a_sel, "--a") or {}
    sel_b = parse_selector_option(b_sel, "--b") or {}
    for value, flag, key in ((pools, "--pools", "pool"), (backends, "--backends", "backend")):
        extra_a, extra_b = _pair_option(value, flag, key)
        if (set(extra_a) & set(sel_a)) or (set(extra_b) & set(sel_b)):
            raise click.UsageError(f"{flag} and --a/--b both name {key}")
        sel_a.update(extra_a)
        sel_b.update(extra_b)
    with open_reports(settings) as queries:
        result = do_compare(
            queries,
            a,
            b,
            sel_a,
            sel_b,
            filters,
            metric=metric,
            threshold=threshold,
            alpha=alpha,
            limit=limit,
            fail_on_regression=fail_on_regression,
        )
    if fmt == "table" and not output:
        print_compare(result, stdout_console())
    elif fmt == "table":
        from rich.console import Console

        with open(output or "", "w", encoding="utf-8") as fh:
            print_compare(result, Console(file=fh, width=250, no_color=True))
    elif fmt == "markdown":
        write_output(render_compare_markdown(result), output)
    elif fmt == "csv":
        write_output(render_csv(compare_rows(result)), output)
    else:
        write_output(json.dumps(compare_rows(result), indent=2, default=str) + "\n", output)
    if fail_on_regression and result.regressions:
        also = " of end-to-end, TTFT or TPOT" if result.compared else ""
        click.echo(
            f"{len(result.regressions)} significant regression(s) of B against A "
            f"({metric}{also}, p < {alpha:g})",
            err=True,
        )
        sys.exit(REGRESSION_EXIT)

