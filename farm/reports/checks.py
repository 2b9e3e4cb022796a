"""An output check as reports show it: what the worker's check measured, whatever the task.

Each task's check (workers/check.py, workers/gencheck.py, and the encoder tasks') records
its own numbers beside `status`: the largest difference from fp32 eager (`max_abs_*`: logits,
the timed call's scores), the smallest similarity (`min_*`: cosine for embeddings) and
agreements reported beside them (`*_agreement`: labels, spans, generated tokens). Reports
read those by their names' shape, not per task, so a task's new field shows without a
change here. A cell several jobs measured shows the worst of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CHECKED = "checked"
TIMED = "timed_output"  # the timed call's own output, checked beside the logits


def _measured(key: str) -> str | None:
    """'max' for a difference, 'min' for a similarity or an agreement, None otherwise."""
    if key.startswith("max_abs_"):
        return "max"
    if key.startswith("min_") or key.endswith("_agreement"):
        return "min"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def worst_check(checks: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The checks of a cell's jobs as one: a status other than checked (or none recorded)
    wins; else each measured number at its worst (largest difference, smallest similarity
    or agreement), the timed call's likewise. None without any check."""
    given = list(checks)
    if not given:
        return None
    found: list[Mapping[str, Any]] = []
    for check in given:
        if not check or check.get("status") != CHECKED:
            return dict(check) if check else {"status": "none recorded"}
        found.append(check)
    out: dict[str, Any] = {"status": CHECKED}
    for check in found:
        for key, value in check.items():
            way = _measured(key)
            if way is None or not _number(value):
                continue
            old = out.get(key)
            if old is None or (value > old if way == "max" else value < old):
                out[key] = value
    timed = [c.get(TIMED) for c in found if c.get(TIMED) is not None]
    if timed:
        out[TIMED] = worst_check(timed)
    return out


def check_text(check: Mapping[str, Any] | None) -> str:
    """One line: 'max |logit diff| 0.0021; label agreement 100%', 'min cosine 0.9993', ...;
    a status other than checked with its reason; '-' without a check."""
    if not check:
        return "-"
    status = check.get("status")
    if status != CHECKED:
        reason = check.get("reason")
        return f"{status}: {reason}" if reason else str(status)
    parts = _parts(check)
    timed = check.get(TIMED)
    if isinstance(timed, Mapping):
        if timed.get("status") == CHECKED:
            parts += [f"timed call {p}" for p in _parts(timed)]
        else:
            parts.append(f"timed call {check_text(timed)}")
    return "; ".join(parts) or CHECKED


def _parts(check: Mapping[str, Any]) -> list[str]:
    """The measured numbers of a check: similarities, differences, then agreements, each
    in the order recorded (`cosine_min`, a threshold, is no measurement)."""
    similar, differences, agreements = [], [], []
    for key, value in check.items():
        if not _number(value):
            continue
        words = key.replace("_", " ")
        if key.startswith("max_abs_"):
            differences.append(f"max |{words.removeprefix('max abs ')}| {value:.3g}")
        elif key.startswith("min_"):
            similar.append(f"min {words.removeprefix('min ')} {value:.4f}")
        elif key.endswith("_agreement"):
            agreements.append(f"{words} {value:.0%}")
    return similar + differences + agreements
