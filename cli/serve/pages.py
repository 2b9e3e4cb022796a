"""The dashboard's pages, rendered on the server (a script only refreshes progress).

Each handler opens one report transaction (`open_reports`, which checks the database
first), calls the same use cases as the CLI and hands plain data to a template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from farm.cli.options import open_reports
from farm.cli.recommend import OBJECTIVES
from farm.cli.serve import params
from farm.cli.serve.views import EXPORTS, blog_table, ms, progress
from farm.db.reports import SqlReports
from farm.errors import NotFound
from farm.hardware import mixed_pools
from farm.reports.cells import DEFAULT_METRICS, GENERATION, METRICS, ReportError
from farm.reports.checks import check_text
from farm.reports.comparison import COMPARE_METRICS
from farm.reports.selectors import Filters

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
TEMPLATES.env.globals.update(ms=ms, urlencode=urlencode)


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def reports(request: Request) -> SqlReports:
    return open_reports(request.app.state.settings)


def campaigns(request: Request) -> Response:
    from farm.db.dashboard import campaign_overview

    limit = params.whole(request, "limit", 50, 1, 1000)
    with reports(request) as q:
        rows = [progress(r) for r in campaign_overview(q.session, limit)]
    return page(request, "campaigns.html", campaigns=rows, limit=limit)


def campaign(request: Request) -> Response:
    from farm.app.reports import job_rows, report
    from farm.db.dashboard import campaign_overview

    ref = params.campaign_ref(request.path_params["ref"])
    asked = params.metrics(request, ())  # none: each task's own (farm report's defaults)
    baseline_text = params.one(request, "baseline")
    baseline = params.selector(request, "baseline")
    filters = params.filters(request)
    with reports(request) as q:
        (cid, name), *_ = q.campaigns([ref])
        overview = progress(campaign_overview(q.session, 1, cid)[0])
        try:
            rep = report(q, [str(cid)], filters, asked or None, baseline, cost=True, checks=True)
        except NotFound:
            rep = None  # no jobs yet
        jobs = [job_view(j) for j in job_rows(q, [str(cid)], filters)]
        recommended = recommendation(q, cid, request)
    if rep is not None and len(rep.unpriced) == len({c.pool for c in rep.cells}):
        rep.cost = False  # no pool has a price: no cost columns
    shown = [m for t in rep.tables for m in t.metrics] if rep is not None else []
    metrics = tuple(dict.fromkeys(shown)) or asked or DEFAULT_METRICS
    chartable = [m for m in metrics if m != "std"]
    chart_metric = params.choice(
        request, "chart", list(METRICS), "p99" if "p99" in chartable else (chartable or ["mean"])[0]
    )
    query = [("metric", m) for m in asked] + ([("baseline", baseline_text)] if baseline else [])
    return page(
        request,
        "campaign.html",
        campaign={"id": cid, "name": name},
        overview=overview,
        tables=[blog_table(rep, t) for t in rep.tables if t.rows] if rep is not None else [],
        has_results=rep is not None and rep.has_results,
        columns=list(dict.fromkeys(t.label(c) for t in rep.tables for c in t.columns))
        if rep is not None
        else [],
        metrics=metrics,
        asked=asked,
        generation=any(j.get("task") == GENERATION for j in jobs),
        all_metrics=list(METRICS),
        baseline=baseline_text or "",
        chart_query=urlencode([*query, ("chart", chart_metric)]),
        chart_metric=chart_metric,
        jobs=jobs[:1000],
        more_jobs=max(0, len(jobs) - 1000),
        exports=EXPORTS,
        recommendation=recommended,
        objectives=OBJECTIVES,
    )


def job_view(row: dict[str, Any]) -> dict[str, Any]:
    """A job's row of the campaign page: `farm report --format json`'s, and what its
    output check measured as the reports say it (`farm.reports.checks`)."""
    return {**row, "check": check_text(row["output_check"])}


def recommendation(q: SqlReports, cid: int, request: Request) -> dict[str, Any]:
    """`farm recommend CAMPAIGN --objective O` (its grid and its JSON), or why not."""
    from farm.app.recommend import recommend
    from farm.reports.recommend_text import recommend_grid

    objective = params.choice(request, "objective", OBJECTIVES, "mean")
    try:
        found = recommend(q, [str(cid)], objective)
    except (NotFound, ReportError) as exc:
        return {"objective": objective, "error": str(exc)}
    header, body, notes = recommend_grid(found)
    return {"objective": objective, "header": header, "body": body, "notes": notes,
            "json": found.to_json()}  # fmt: skip


def job_of(request: Request) -> dict[str, Any]:
    """The job the path names, in full (404 when there is none): its page and its API."""
    from farm.db.dashboard import job_detail

    job_id = params.job_id(request.path_params["job_id"])
    with reports(request) as q:
        found = job_detail(q.session, job_id)
    if found is None:
        raise params.bad(f"job {job_id} does not exist", 404)
    return found


def job(request: Request) -> Response:
    found = job_of(request)
    samples = found.pop("samples_ms")
    warmup = found.pop("warmup_ms")
    return page(
        request,
        "job.html",
        job=found,
        has_samples=samples is not None and len(samples) > 0,
        warmup_count=0 if warmup is None else len(warmup),
    )


def compare(request: Request) -> Response:
    from farm.app.reports import compare as do_compare
    from farm.reports.text import compare_lines

    keys = ("a", "b", "a_sel", "b_sel", "pools", "backends", "threshold", "alpha")
    form = {k: params.one(request, k) or "" for k in keys}
    metric = params.choice(request, "metric", COMPARE_METRICS, "mean")
    with reports(request) as q:
        from farm.db.dashboard import campaign_overview

        choices = [(r["id"], r["name"]) for r in campaign_overview(q.session, 200)]
        if not form["a"]:
            return page(request, "compare.html", form=form, metric=metric, choices=choices,
                        metrics=COMPARE_METRICS, result=None)  # fmt: skip
        args = compare_args(request)
        result = do_compare(q, **args)
    header, body, notes, verdicts = compare_lines(result)
    api = "/api/compare?" + urlencode([(k, v) for k, v in request.query_params.multi_items()])
    return page(request, "compare.html", form=form, metric=metric, choices=choices,
                metrics=COMPARE_METRICS, result=result, header=header,
                body=list(zip(body, verdicts, strict=True)), notes=notes, api=api)  # fmt: skip


def compare_args(request: Request) -> dict[str, Any]:
    """The compare use case's arguments from the query, as `farm compare` parses its own."""
    a = params.campaign_ref(params.one(request, "a") or "")
    b_text = params.one(request, "b")
    sel_a = params.selector(request, "a_sel") or {}
    sel_b = params.selector(request, "b_sel") or {}
    for name, key in (("pools", "pool"), ("backends", "backend")):
        extra_a, extra_b = params.pair(request, name, key)
        if (set(extra_a) & set(sel_a)) or (set(extra_b) & set(sel_b)):
            raise params.bad(f"{name}= and a_sel/b_sel both name {key}")
        sel_a.update(extra_a)
        sel_b.update(extra_b)
    return {
        "a_ref": a,
        "b_ref": params.campaign_ref(b_text) if b_text else None,
        "a_selector": sel_a,
        "b_selector": sel_b,
        "filters": params.filters(request),
        "metric": params.choice(request, "metric", COMPARE_METRICS, "mean"),
        "threshold": params.number(request, "threshold", 0, 1),
        "alpha": params.number(request, "alpha", 0, 1) or 0.01,
        "limit": params.whole(request, "limit", 50, 0, 100_000),
    }


def hosts(request: Request) -> Response:
    with reports(request) as q:
        data = hosts_data(q.session, request.app.state.settings.worker_ttl_s)
    return page(request, "hosts.html", **data)


def hosts_data(session: Session, ttl_s: int) -> dict[str, Any]:
    """Workers (as `farm hosts`), pools with prices (as `farm pools`), mixed-class warnings."""
    from farm.db.dashboard import workers_view
    from farm.db.pools import list_pools

    workers = workers_view(session, ttl_s)
    live = [(w["pool"], w["hardware_class"]) for w in workers if w["live"]]
    warnings = [
        f"pool {pool!r} mixes hardware classes: {', '.join(sorted(classes))}; "
        "its numbers mix machines"
        for pool, classes in sorted(mixed_pools(live).items())
    ]
    return {"workers": workers, "pools": list_pools(session), "warnings": warnings}


def trends(request: Request) -> Response:
    from farm.db.dashboard import campaign_names

    name = params.one(request, "name")
    with reports(request) as q:
        names = campaign_names(q.session)
        if name is None:
            return page(request, "trends.html", names=names, name=None)
        params.campaign_ref(name)
        cell = params.one(request, "column") and trend_cell(request)
        if not cell:
            return page(request, "trends.html", names=names, name=name,
                        cells=latest_cells(q, name))  # fmt: skip
        found = trend_of(q, request)
    query = urlencode(list(request.query_params.multi_items()))
    return page(request, "trends.html", names=names, name=name, trend=found, query=query)


def trend_cell(request: Request) -> Any:
    from farm.app.trends import TrendCell

    model, input_name = params.one(request, "model"), params.one(request, "input")
    batch = params.whole(request, "batch", 0, 1, 1_000_000)
    column = params.one(request, "column")
    if not (model and input_name and batch and column):
        raise params.bad("a trend needs model=, input=, batch= and column= (a column label)")
    return TrendCell(model, input_name, batch, column)


def trend_of(q: SqlReports, request: Request) -> Any:
    from farm.app.trends import trend
    from farm.db.dashboard import campaigns_named

    name = params.campaign_ref(params.one(request, "name") or "")
    limit = params.whole(request, "limit", 30, 2, 500)
    metric = params.choice(request, "metric", COMPARE_METRICS, "mean")
    return trend(q, campaigns_named(q.session, name, limit), trend_cell(request), metric)


def latest_cells(q: SqlReports, name: str) -> list[dict[str, Any]]:
    """The cells of the newest campaign of this name: what a trend can follow."""
    from farm.app.reports import report

    (cid, _), *_ = q.campaigns([name])
    try:
        rep = report(q, [str(cid)], Filters(), ("mean",))
    except NotFound:
        return []
    return [
        {"model": row[0], "input": row[1], "batch": row[2], "column": table.label(col),
         "label": f"{table.row_label(row)} · {table.label(col)}"}
        for table in rep.tables
        for (row, col), cell in table.cells.items() if cell.results
    ]  # fmt: skip
