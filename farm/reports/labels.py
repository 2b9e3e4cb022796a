"""How reports name rows and columns: the labels a person reads and types back as selectors.

A column label is backend(options)@pool+allocator{layout}[stack] [measure]; the braces and brackets
appear only where they tell cells apart (farm.reports.selectors parses them back).
"""

from __future__ import annotations

from collections.abc import Iterable

from farm.stacks import stack_name

RowKey = tuple[str, str, int, str]
# backend, options, pool, allocator, layout, stack, measure
ColumnKey = tuple[str, str, str, str, str, str, str]
STACK = 5  # the stack's place in a column key


def column_label(key: ColumnKey, stack: str | None = None) -> str:
    """backend(options)@pool+allocator{layout}, [stack] when given (see column_labels), and
    ' [forward]' for the forward measure: the defaults (the default allocator, no layout, the
    pipeline measure) are not written, so the blog's headers stay as they were."""
    backend, options, pool, allocator, layout, _, measure = key
    label = f"{backend}({options})" if options else backend
    label += f"@{pool}"
    label = label if allocator == "default" else f"{label}+{allocator}"
    label = f"{label}{{{layout}}}" if layout else label
    label = f"{label}[{stack}]" if stack else label
    return label if measure == "pipeline" else f"{label} [{measure}]"


def layout_text(instances: int, cores_per_instance: int | None) -> str:
    """A throughput-mode layout as a column shows it in braces: '2x1' is 2 instances of
    1 CPU each (`pytorch@icelake{2x1}`)."""
    return f"{instances}x{cores_per_instance}" if cores_per_instance else ""


def column_labels(keys: Iterable[ColumnKey]) -> dict[ColumnKey, str]:
    """Each column's label, qualified with its stack only where two would otherwise be the
    same: with the stack's name where that tells them apart, else with its lock too."""
    by_label: dict[str, list[ColumnKey]] = {}
    for key in keys:
        by_label.setdefault(column_label(key), []).append(key)
    labels: dict[ColumnKey, str] = {}
    for label, same in by_label.items():
        if len(same) == 1:
            labels[same[0]] = label
            continue
        names = [stack_name(key[STACK]) for key in same]
        for key, name in zip(same, names, strict=True):
            labels[key] = column_label(key, name if names.count(name) == 1 else key[STACK])
    return labels


def row_label(key: RowKey, tokens: int | None = None, tokens_max: int | None = None) -> str:
    model, input_name, batch, batching = key
    tok = ""
    if tokens is not None:
        tok = f" ({tokens})" if tokens_max in (None, tokens) else f" ({tokens}-{tokens_max})"
    batched = " batched" if batching == "batched" else ""
    return f"{model} · {input_name}{tok} · batch {batch}{batched}"
