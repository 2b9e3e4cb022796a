"""Rendering for the terminal (rich) and for machines (CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

CSV_KEYS = (
    "campaign", "job", "state", "model", "input", "tokens", "batch_size", "batching", "backend",
    "pool", "host", "worker", "n", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "std_ms", "min_ms",
    "max_ms", "weights", "error",
)  # fmt: skip


def stdout_console() -> Console:
    """Piped output keeps whole rows rather than rich's 80-column default."""
    return Console(width=None if sys.stdout.isatty() else 200)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    table = Table(title="latency per pipeline call, ms")
    for col, justify in (
        ("model", "left"),
        ("input (tokens)", "left"),
        ("batch", "right"),
        ("backend", "left"),
        ("pool", "left"),
        ("host", "left"),
        ("mean", "right"),
        ("p99", "right"),
        ("n", "right"),
        ("state", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    random_weights = False
    for r in rows:
        random_weights |= r["weights"] == "random"
        options = ",".join(f"{k}={v}" for k, v in r["backend_options"].items())
        backend = f"{r['backend']} ({options})" if options else r["backend"]
        state = r["state"] if r["state"] != "failed" else f"[red]failed[/red]: {r['error']}"
        batch = f"{r['batch_size']}" + (" batched" if r["batching"] == "batched" else "")
        tokens = f" ({r['tokens']})" if r["tokens"] else ""
        table.add_row(
            r["model"],
            r["input"] + tokens,
            batch,
            backend,
            r["pool"],
            r["host"] or "-",
            _ms(r["mean_ms"]),
            _ms(r["p99_ms"]),
            str(r["n"] or "-"),
            state,
        )
    console = console or stdout_console()
    console.print(table)
    if random_weights:
        console.print(
            "note: replica models have random weights: latencies are real, "
            "predictions are meaningless"
        )


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_KEYS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
