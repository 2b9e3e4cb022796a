"""`farm recommend` as text for people: a grid (terminal and Markdown) and its notes.

The cells left out are noted once per reason (`farm.reports.notes`), not once per cell.
"""

from __future__ import annotations

from farm.reports.notes import group_reasons, note_text
from farm.reports.recommend import Choice, Recommendation
from farm.reports.text import Grid, markdown_table, money, number


def value_text(rec: Recommendation, value: float | None, currency: str | None = None) -> str:
    if rec.objective.name == "cost":
        return money(value, currency)
    return number(value, rec.objective.name)


def choice_line(rec: Recommendation, c: Choice) -> list[str]:
    tokens = f" ({c.tokens})" if c.tokens is not None else ""
    measure = "" if c.measure == "pipeline" else f" [{c.measure}]"
    batch = f"{c.batch_size}" + (" batched" if c.batching == "batched" else "") + measure
    line = [c.model, c.input + tokens, batch]
    if c.best is None:
        return [*line, "-", "-", "-", "-", "-", "-", f"nothing qualifies: {c.why}"]
    m = c.margin
    runner = c.runner_up
    return [
        *line,
        c.best.column,
        value_text(rec, c.best.value, c.best.currency),
        runner.column if runner else "-",
        value_text(rec, runner.value, runner.currency) if runner else "-",
        "-" if m is None else f"{m.margin:+.1%}",
        "-" if m is None or m.p_value is None else _p(m.p_value),
        c.verdict,
    ]


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def recommend_grid(rec: Recommendation) -> Grid:
    goal = rec.objective
    unit = goal.unit
    header = ["model", "input (tokens)", "batch", "best", f"{goal.name} ({unit})", "runner-up",
              f"runner-up {goal.name}", "margin", "p", "verdict"]  # fmt: skip
    body = [choice_line(rec, c) for c in rec.choices]
    return header, body, recommend_notes(rec)


def recommend_notes(rec: Recommendation) -> list[str]:
    goal = rec.objective
    better = "higher" if goal.higher_is_better else "lower"
    notes = [
        f"best: the {better} {goal.name} among the row's cells whose output check passed "
        f"and that no validity reason bearing on {goal.name} excludes; the numbers are "
        "`farm report`'s",
        f"margin: how much worse the runner-up is; significant: p < {rec.alpha:g} "
        "(Mann-Whitney U on the raw samples, as `farm compare`) and the margin above the "
        "threshold (the pools' calibrated noise floor, else 3%)",
    ]
    if goal.name in ("throughput", "cost"):
        notes.append(
            "the U test compares each call's time per sequence of the whole worker"
            + (" × the pool's price" if goal.name == "cost" else "")
        )
    pairs = []
    for c in rec.choices:
        measure = "" if c.measure == "pipeline" else f" [{c.measure}]"
        batched = " batched" if c.batching == "batched" else ""
        row = f"{c.model} · {c.input} · batch {c.batch_size}{batched}{measure}"
        pairs += [(reason, f"{row} · {e.column}") for e in c.excluded for reason in e.reasons]
    for reason, labels in group_reasons(pairs):
        notes.append(f"left out: {note_text(reason, labels)}")
    if rec.unpriced:
        notes.append(
            f"no price for pool(s) {', '.join(rec.unpriced)}: "
            "`farm pools price POOL PRICE_PER_HOUR`"
        )
    if rec.random_weights:
        notes.append(
            "replica models have random weights: latencies are real, predictions meaningless"
        )
    return notes


def render_recommend_markdown(rec: Recommendation) -> str:
    header, body, notes = recommend_grid(rec)
    title = f"### Recommendation for {rec.title}: {rec.objective.name}\n\n"
    return title + markdown_table(header, body) + "\n" + "".join(f"- {n}\n" for n in notes)
