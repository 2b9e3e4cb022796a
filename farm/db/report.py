"""Kept only for `farm run` in farm/cli/commands.py, which prints the per-job rows: they are
`farm.db.reports.jobs.report_rows` (or `farm.app.reports.job_rows`). Remove this module
once that import moves."""

from farm.db.reports.jobs import report_rows

__all__ = ["report_rows"]
