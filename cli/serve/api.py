"""JSON under /api/ (the keys the CLI's `--format json` writes), the export downloads
(the bytes the CLI's export formats write) and the SVG figures."""

from __future__ import annotations

import io
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from farm.cli.recommend import OBJECTIVES
from farm.cli.serve import params
from farm.cli.serve.pages import compare_args, hosts_data, job_of, reports, trend_of
from farm.cli.serve.views import EXPORTS
from farm.reports.cells import METRICS
from farm.reports.selectors import Filters


def as_json(data: Any, status: int = 200) -> Response:
    """JSON as the CLI writes it (`default=str`: datetimes and the like as text)."""
    return Response(json.dumps(data, indent=2, default=str) + "\n", status,
                    media_type="application/json")  # fmt: skip


def campaigns(request: Request) -> Response:
    from farm.db.dashboard import campaign_overview

    limit = params.whole(request, "limit", 50, 1, 1000)
    with reports(request) as q:
        return as_json(campaign_overview(q.session, limit))


def campaign(request: Request) -> Response:
    from farm.db.dashboard import campaign_overview

    ref = params.campaign_ref(request.path_params["ref"])
    with reports(request) as q:
        (cid, _), *_ = q.campaigns([ref])
        return as_json(campaign_overview(q.session, 1, cid)[0])


def report(request: Request) -> Response:
    """`farm report CAMPAIGN --format json [--cost]`: one object per job."""
    from farm.app.reports import job_rows

    ref = params.campaign_ref(request.path_params["ref"])
    cost = params.choice(request, "cost", ("0", "1"), "0") == "1"
    with reports(request) as q:
        return as_json(job_rows(q, [ref], params.filters(request), cost))


def cells(request: Request) -> Response:
    """`farm export CAMPAIGN --cells --format json`: one object per cell."""
    from farm.app.reports import report as make_report
    from farm.reports.exports import report_tidy_rows

    ref = params.campaign_ref(request.path_params["ref"])
    metrics = params.metrics(request, ())
    with reports(request) as q:
        rep = make_report(q, [ref], params.filters(request), metrics or None, checks=True)
    return as_json(report_tidy_rows(rep))


def job(request: Request) -> Response:
    """One job's `farm report --format json` row plus what it ran with and its attempts."""
    found = job_of(request)
    for key in ("samples_ms", "warmup_ms"):
        values = found.pop(key)
        found[key.replace("_ms", "_count")] = 0 if values is None else len(values)
    return as_json(found)


def compare(request: Request) -> Response:
    """`farm compare ... --format json`: one object per pair."""
    from farm.app.reports import compare as do_compare
    from farm.reports.exports import compare_rows

    with reports(request) as q:
        result = do_compare(q, **compare_args(request))
    return as_json(compare_rows(result))


def hosts(request: Request) -> Response:
    with reports(request) as q:
        return as_json(hosts_data(q.session, request.app.state.settings.worker_ttl_s))


def trends(request: Request) -> Response:
    with reports(request) as q:
        return as_json(trend_of(q, request).to_json())


def recommend(request: Request) -> Response:
    """`farm recommend CAMPAIGN --objective O --format json`."""
    from farm.app.recommend import recommend as make_recommendation

    ref = params.campaign_ref(request.path_params["ref"])
    objective = params.choice(request, "objective", OBJECTIVES, "mean")
    with reports(request) as q:
        found = make_recommendation(q, [ref], objective, params.filters(request))
    return as_json(found.to_json())


# --- downloads and figures -----------------------------------------------------------------


def export(request: Request) -> Response:
    """Each export format, as the CLI command EXPORTS names writes it."""
    from farm.app.reports import job_rows, raw_jobs, write_raw
    from farm.app.reports import report as make_report
    from farm.reports.exports import (
        bencher_metric_format,
        render_csv,
        render_jobs,
        report_tidy_rows,
    )
    from farm.reports.text import render_markdown

    ref = params.campaign_ref(request.path_params["ref"])
    what = request.path_params["name"]
    if what not in {name for name, _, _ in EXPORTS}:
        known = ", ".join(n for n, _, _ in EXPORTS)
        raise params.bad(f"no export {what[:50]!r}; there are {known}", 404)
    text: str | bytes
    with reports(request) as q:
        (cid, _), *_ = q.campaigns([ref])
        refs, none = [str(cid)], Filters()
        if what in ("jobs.json", "jobs.csv"):
            text = render_jobs(job_rows(q, refs, none), what.rpartition(".")[2])
        elif what == "raw.csv":
            buf = io.StringIO()
            write_raw(q, raw_jobs(q, refs, none), buf)
            text = buf.getvalue()
        else:
            rep = make_report(q, refs, none, checks=what != "bmf.json")
    if what == "report.md":
        text = render_markdown(rep)
    elif what == "report.html":
        from farm.cli.render import chart_images
        from farm.reports.text import render_html

        shown = {m for t in rep.tables for m in t.metrics}
        images = chart_images(rep.tables, "p99" if "p99" in shown else None)
        text = render_html(rep, images)
    elif what == "report.csv":
        text = render_csv(report_tidy_rows(rep))
    elif what == "cells.json":
        text = json.dumps(report_tidy_rows(rep), indent=2) + "\n"
    elif what == "bmf.json":
        text = json.dumps(bencher_metric_format(rep.cells), indent=2) + "\n"
    kind = {"md": "text/markdown", "html": "text/html", "csv": "text/csv"}
    media = kind.get(what.rpartition(".")[2], "application/json")
    disposition = f'attachment; filename="campaign-{cid}-{what}"'
    return Response(text, media_type=media, headers={"Content-Disposition": disposition})


SVG = "image/svg+xml"


def chart(request: Request) -> Response:
    """The campaign's chart: `farm plot`'s figure for one metric, with the page's baseline."""
    from farm.app.reports import plot_data
    from farm.cli.serve.charts import campaign_chart

    ref = params.campaign_ref(request.path_params["ref"])
    metric = params.choice(request, "chart", list(METRICS), "p99")
    with reports(request) as q:
        base = params.selector(request, "baseline")
        rep = plot_data(q, [ref], params.filters(request), metric, base)
    return Response(campaign_chart(rep.tables, metric), media_type=SVG)


def histogram(request: Request) -> Response:
    from farm.cli.serve.charts import histogram as draw
    from farm.cli.serve.charts import warmup_trace
    from farm.db.dashboard import job_detail

    job_id = params.job_id(request.path_params["job_id"])
    with reports(request) as q:
        found = job_detail(q.session, job_id)
    if found is None or found["samples_ms"] is None:
        raise params.bad(f"job {job_id} has no samples", 404)
    if request.path_params["figure"] == "warmup.svg":
        return Response(warmup_trace(found["warmup_ms"], found["samples_ms"]), media_type=SVG)
    return Response(draw(found["samples_ms"], found["mean_ms"], found["p99_ms"]), media_type=SVG)


def trend_chart(request: Request) -> Response:
    from farm.cli.serve.charts import trend_chart as draw

    with reports(request) as q:
        found = trend_of(q, request)
    points = [(f"{p.campaign} ({(p.created_at or '')[:10]})", p.value)
              for p in found.points if p.value is not None]  # fmt: skip
    if not points:
        raise params.bad("this cell has no result in those campaigns", 404)
    return Response(draw(points, found.metric, found.cell.describe()), media_type=SVG)
