"""The selector language (`backend=pytorch,pool=icelake`, a column label) and the filters.

Selectors name cells for --baseline and compare's --a/--b; filters are the report
options --model/--input/--batch/--backend/--pool/--stack/--measure/--task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from farm.reports.cells import Cell, ReportError, plain
from farm.stacks import stack_matches

# Selector keys that name rows, not columns (a baseline may not use them).
ROW_FIELDS = ("model", "input", "batch", "batching", "mode")
# Selector keys a column label spells out.
LABEL_FIELDS = ("backend", "pool", "allocator", "stack", "measure")

# A column as reports print it: backend(options)@pool+allocator{layout}[stack] [measure],
# e.g. ipex(dtype=bf16)@spr, pytorch@icelake{2x1} (2 instances of 1 CPU: throughput mode),
# openvino@spr [forward]; [stack] only where two columns differ by nothing else.
COLUMN_LABEL = re.compile(
    r"(?P<backend>[^()@+=,\[\]\s{}]+)(?:\((?P<options>[^()]*)\))?@(?P<pool>[^()@+=,\[\]\s{}]+)"
    r"(?:\+(?P<allocator>[^()@+=,\[\]\s{}]+))?(?:\{(?P<instances>\d+)x(?P<cores>\d+)\})?"
    r"(?:\[(?P<stack>[^()+=,\[\]\s]+)\])?(?:\s+\[(?P<measure>pipeline|forward)\])?"
)
# Selector keys for the layout of throughput mode (cells without one: instances=1).
LAYOUT_FIELDS = ("instances", "cores_per_instance")


def parse_selector(text: str, what: str = "selector") -> dict[str, str]:
    """'backend=pytorch,pool=icelake' → {'backend': 'pytorch', 'pool': 'icelake'}.

    Keys: model, input, batch, batching, backend, pool, allocator, mode, measure, stack
    (`ipex`: every lock of it, `ipex@LOCK`: one), instances, cores_per_instance (0: not
    throughput mode); any other key is a backend option (e.g. dtype=bf16). A column label as
    a report prints it ('pytorch(dtype=fp32)@icelake', 'pytorch@zen4[ipex]', 'openvino@spr
    [forward]') selects exactly that column.
    """
    label = COLUMN_LABEL.fullmatch(text.strip())
    if label is not None:
        options = parse_selector(label["options"], what) if label["options"] else {}
        return {
            "backend": label["backend"],
            **{k: v for k, v in options.items() if k not in LABEL_FIELDS},
            "pool": label["pool"],
            "allocator": label["allocator"] or "default",
            "instances": label["instances"] or "1",
            "cores_per_instance": label["cores"] or "0",
            **({"stack": label["stack"]} if label["stack"] else {}),
            "measure": label["measure"] or "pipeline",
        }
    selector: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ReportError(
                f"{what} {text!r}: expected KEY=VALUE pairs separated by commas, "
                "e.g. backend=pytorch,pool=icelake"
            )
        if key in selector:
            raise ReportError(f"{what} {text!r} names {key!r} twice")
        selector[key] = value
    if not selector:
        raise ReportError(f"{what} is empty; e.g. backend=pytorch,pool=icelake")
    return selector


def selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


def option_value(options: dict[str, Any], key: str) -> str | None:
    """A backend option as a selector writes it (`jit=true`), None when absent."""
    return plain(options[key]) if key in options else None


def field_value(cell: Cell, key: str) -> str | None:
    """A cell's value for a selector key, as text (None: the cell has no such field)."""
    if key == "model":
        return cell.model
    if key == "input":
        return cell.input
    if key == "batch":
        return str(cell.batch_size)
    if key == "batching":
        return cell.batching
    if key == "backend":
        return cell.backend
    if key == "pool":
        return cell.pool
    if key == "allocator":
        return cell.allocator
    if key == "mode":
        return cell.mode
    if key == "stack":
        return cell.stack
    if key == "instances":
        return str(cell.instances)
    if key == "cores_per_instance":
        return str(cell.cores_per_instance)
    if key == "measure":
        return cell.measure
    return option_value(cell.backend_options, key)


def matches(selector: dict[str, str], cell: Cell) -> bool:
    if not selector:
        return True
    return all(
        stack_matches(v, cell.stack) if k == "stack" else field_value(cell, k) == v
        for k, v in selector.items()
    )


@dataclass(frozen=True)
class Filters:
    """What the report's filter options keep (empty: everything)."""

    models: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    batches: tuple[int, ...] = ()
    backends: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    stacks: tuple[str, ...] = ()  # a stack's name (every lock) or NAME@LOCK
    measures: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()  # a report of several tasks' campaigns: some of them

    def describe(self) -> str:
        parts: list[str] = []
        for flag, values in (
            ("--model", self.models),
            ("--input", self.inputs),
            ("--batch", self.batches),
            ("--backend", self.backends),
            ("--pool", self.pools),
            ("--stack", self.stacks),
            ("--measure", self.measures),
            ("--task", self.tasks),
        ):
            parts.extend(f"{flag} {v}" for v in values)
        return " ".join(parts)

    def __bool__(self) -> bool:
        return bool(
            self.models or self.inputs or self.batches or self.backends or self.pools
            or self.stacks or self.measures or self.tasks
        )  # fmt: skip
