"""`farm plot`'s figure: one bar group per input, one bar per backend@pool, the reported heights."""

from __future__ import annotations

import math

import pytest

from tests.support.cells import BLOG

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_figure_groups_bars_and_heights() -> None:
    from farm.cli.render import build_figure
    from farm.reports.layout import wide_table

    table = wide_table(BLOG, ("p99",))
    fig = build_figure(table, "p99")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["short (10)\nbatch 1", "long (151)\nbatch 1"]  # one group per input
    assert len(ax.containers) == 2  # one bar per backend@pool in each group
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["pytorch@icelake", "ipex(dtype=bf16)@spr"]
    heights = [[bar.get_height() for bar in c] for c in ax.containers]
    assert heights == [[49.6, 139.6], [24.8, 79.6]]
    # Within a group the bars sit side by side around the group's tick.
    pytorch_short, ipex_short = ax.containers[0][0], ax.containers[1][0]
    assert pytorch_short.get_x() < ipex_short.get_x() < 1 - 0.4


def test_speedup_labels_against_the_baseline() -> None:
    from farm.cli.render import build_figure
    from farm.reports.layout import wide_table

    table = wide_table(BLOG, ("mean",), {"backend": "pytorch"})
    fig = build_figure(table, "mean")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "2.00×" in texts and texts.count("2.00×") == 2
    assert "30" in texts and "120" in texts  # the baseline's bars carry their values


def test_missing_cell_is_an_empty_bar_and_png_is_valid() -> None:
    from farm.cli.render import build_figure, figure_png
    from farm.reports.layout import wide_table

    table = wide_table(BLOG[:3], ("p99",))
    fig = build_figure(table, "p99")
    ipex = fig.axes[0].containers[1]
    assert ipex[0].get_height() == 24.8 and math.isnan(ipex[1].get_height())
    png = figure_png(fig, dpi=50)
    assert png.startswith(PNG_MAGIC)
