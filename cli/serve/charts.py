"""The dashboard's figures, drawn on the server as SVG by matplotlib (no script, no CDN):
the campaign's chart is `farm plot`'s figure; a job's histogram and warm-up trace and a
cell's trend are drawn here from numbers the report code computed."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from farm.reports.layout import WideTable

_LOCK = threading.RLock()  # matplotlib's font and text caches are shared between threads


def svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with _LOCK:
        fig.savefig(buf, format="svg")
    return buf.getvalue()


def campaign_chart(tables: Sequence[WideTable], metric: str) -> bytes:
    """`farm plot`'s grouped bars (one panel per model, a bar per backend@pool)."""
    from farm.cli.render import build_figure

    labels = {key: t.label(key) for t in tables for key in t.columns}
    with _LOCK:
        fig = build_figure(tables, metric)
        for artist in fig.findobj():
            gid = artist.get_gid()
            if isinstance(gid, tuple):  # a bar's column key: SVG ids are text
                artist.set_gid(labels.get(gid, str(gid)))  # type: ignore[arg-type]
    return svg(fig)


def _figure(width: float = 7.0, height: float = 3.2) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def histogram(samples_ms: Any, mean: float | None, p99: float | None) -> bytes:
    """The job's raw timed samples, with its mean and p99 marked."""
    with _LOCK:
        fig = _figure()
        ax = fig.subplots()
        ax.hist(samples_ms, bins=min(60, max(10, int(len(samples_ms) ** 0.5))), color="C0")
        for value, label, colour in ((mean, "mean", "C1"), (p99, "p99", "C3")):
            if value is not None:
                ax.axvline(value, color=colour, linestyle="--", label=f"{label} {value:.3g} ms")
        ax.set_xlabel("latency per call (ms)")
        ax.set_ylabel("calls")
        ax.set_title(f"{len(samples_ms)} timed calls", fontsize=10)
        ax.legend(fontsize=8)
    return svg(fig)


def warmup_trace(warmup_ms: Any, samples_ms: Any, shown: int = 200) -> bytes:
    """The warm-up calls, then the first timed ones: where latency settles."""
    with _LOCK:
        fig = _figure()
        ax = fig.subplots()
        n_warm = 0 if warmup_ms is None else len(warmup_ms)
        if n_warm:
            ax.plot(range(n_warm), warmup_ms, ".-", color="C1", label=f"{n_warm} warm-up calls")
        if samples_ms is not None and len(samples_ms):
            timed = samples_ms[:shown]
            ax.plot(range(n_warm, n_warm + len(timed)), timed, ".", color="C0", markersize=3,
                    label=f"first {len(timed)} timed calls")  # fmt: skip
        ax.set_xlabel("call")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    return svg(fig)


def trend_chart(points: Sequence[tuple[str, float]], metric: str, title: str) -> bytes:
    """One value per campaign, in order (label, value)."""
    with _LOCK:
        fig = _figure(8.0, 3.2)
        ax = fig.subplots()
        ax.plot(range(len(points)), [v for _, v in points], "o-", color="C0")
        ax.set_xticks(range(len(points)), [label for label, _ in points], fontsize=8,
                      rotation=30, ha="right")  # fmt: skip
        ax.set_ylabel(f"{metric} (ms)")
        ax.set_title(title, fontsize=10)
        ax.margins(y=0.2)
    return svg(fig)
