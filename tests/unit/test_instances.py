"""Throughput mode (instances x cores_per_instance): matrix, routing, window arithmetic, reports."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from farm.app.embedded import run_embedded
from farm.app.status import waiting_warnings
from farm.errors import MatrixError
from farm.instances import DoesNotFit, common_window, shortfall, split_cpus
from farm.jobs import JobSpec, ModelSpec
from farm.matrix import parse_matrix
from farm.reports.cells import Cell, set_pooled, unpooled
from farm.reports.layout import find_baseline, wide_table
from farm.reports.selectors import parse_selector
from farm.stacks import cpu_queues, queue_cpus, queue_parts
from tests.support.cells import cell

BASE: dict[str, Any] = {
    "name": "t", "models": ["m"], "inputs": {"s": "hi"}, "batch_sizes": [1],
    "backends": ["pytorch"], "pools": ["a"],
}  # fmt: skip


def layouts(**extra: Any) -> list[tuple[int, int | None]]:
    return [(j.instances, j.cores_per_instance) for j in parse_matrix({**BASE, **extra}).expand()]


def test_instances_default_to_one_copy_on_the_workers_own_pinning() -> None:
    assert layouts() == [(1, None)]
    [job] = parse_matrix(BASE).expand()
    assert job.queue == "farm.a" and job.cpus_needed == 0


def test_instances_and_cores_take_one_value_or_a_list() -> None:
    assert layouts(instances=2, cores_per_instance=1) == [(2, 1)]
    assert layouts(instances=[1, 2], cores_per_instance=[1, 2]) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    # excludes name them like any other dimension
    assert layouts(instances=[1, 2], cores_per_instance=[1, 2],
                   exclude=[{"instances": 2, "cores_per_instance": 2}]) == [
        (1, 1), (1, 2), (2, 1)]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"instances": 2}, "cores_per_instance: required when instances > 1"),
        ({"instances": 0, "cores_per_instance": 1}, "instances.0: Input should be greater"),
        ({"instances": 257, "cores_per_instance": 1}, "less than or equal to 256"),
        ({"instances": "2", "cores_per_instance": 1}, "instances.0: Input should be a valid int"),
        ({"instances": True, "cores_per_instance": 1}, "instances.0: Input should be a valid int"),
        ({"instances": 2, "cores_per_instance": 0}, "cores_per_instance.0: Input should be"),
        ({"instances": 2, "cores_per_instance": 2000}, "less than or equal to 1024"),
        ({"instances": 2, "cores_per_instance": None}, "cores_per_instance: List should have"),
        ({"instances": [], "cores_per_instance": 1}, "instances: List should have at least 1"),
    ],
)
def test_bad_layouts_are_refused_with_the_field_named(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(MatrixError, match="invalid matrix") as err:
        parse_matrix({**BASE, **extra})
    assert message in str(err.value)


def test_a_2x1_cell_is_not_a_1x2_cell() -> None:
    jobs = parse_matrix({**BASE, "instances": [1, 2], "cores_per_instance": [1, 2]}).expand()
    assert len({j.cell_key() for j in jobs}) == 4
    one_by_two, two_by_one = jobs[1], jobs[2]
    assert (one_by_two.cpus_needed, two_by_one.cpus_needed) == (2, 2)


def test_a_job_spec_refuses_instances_without_cores() -> None:
    with pytest.raises(ValueError, match="cores_per_instance is required"):
        JobSpec(model=ModelSpec(name="m"), input_name="s", input_text="x", batch_size=1,
                backend="pytorch", pool="a", instances=2)  # fmt: skip


def test_a_throughput_job_goes_to_the_queue_of_the_cpus_it_needs() -> None:
    [job] = parse_matrix({**BASE, "instances": 2, "cores_per_instance": 2,
                          "allocators": ["tcmalloc"]}).expand()  # fmt: skip
    assert job.queue == "farm.a.tcmalloc.cpus4"
    assert queue_cpus(job.queue) == 4 and queue_parts(job.queue) == ("a", "main", "tcmalloc")
    assert queue_cpus("farm.a") == 0
    # a worker pinned to 2 CPUs serves up to .cpus2, never .cpus4: the job waits
    assert cpu_queues("farm.a", 2) == ["farm.a", "farm.a.cpus2"]
    assert job.queue not in cpu_queues("farm.a.tcmalloc", 3)
    assert job.queue in cpu_queues("farm.a.tcmalloc", 4)


def test_cpus_are_split_into_consecutive_runs_or_refused() -> None:
    assert split_cpus([3, 1, 0, 2], 2, 2, "w") == [[0, 1], [2, 3]]
    assert split_cpus([0, 1, 2], 1, 2, "w") == [[0, 1]]
    with pytest.raises(DoesNotFit, match=r"needs 4 CPUs \(2 instances x 2\), worker w1 has 2"):
        split_cpus([0, 1], 2, 2, "worker w1")
    assert shortfall(2, 1, 2, "w") is None


def test_status_says_why_a_throughput_job_waits() -> None:
    worker = SimpleNamespace(name="w1", pool="a", hostname="h", hardware_class=None,
                             queues=["farm.a", "farm.a.cpus2", "farm.worker.w1"], cpus="0,1",
                             fingerprint={})  # fmt: skip
    [warning] = waiting_warnings({("a", "farm.a.cpus4", "pytorch"): 1}, [worker])
    assert "waiting: needs 4 CPUs (instances x cores_per_instance), worker w1 has 2" in warning
    assert waiting_warnings({("a", "farm.a.cpus2", "pytorch"): 1}, [worker]) == []


def test_embedded_run_refuses_a_layout_larger_than_its_cpus_before_writing() -> None:
    job = parse_matrix({**BASE, "instances": 2, "cores_per_instance": 2}).expand()[0]
    store = SimpleNamespace(create_campaign=lambda *a: pytest.fail("nothing may be written"))
    runner = SimpleNamespace(prepare=lambda *a: pytest.fail("nothing may be prepared"))
    with pytest.raises(DoesNotFit, match=r"needs 4 CPUs \(2 instances x 2\), this run"):
        run_embedded(store, runner, "t", {}, [job], cpus={0, 1}, threads=None,  # type: ignore[arg-type]
                     on_job=lambda *a: None)  # fmt: skip


def test_the_common_window_counts_calls_ending_inside_it() -> None:
    # instance 0 starts at 100 and makes calls of 10 ns; instance 1 starts at 125, 20 ns each
    s0, e0 = np.full(10, 10), 100 + 10 * np.arange(1, 11)  # ends 110 .. 200
    s1, e1 = np.full(5, 20), 125 + 20 * np.arange(1, 6)  # ends 145 .. 225
    window = common_window([s0, s1], [e0, e1])
    assert (window.start_ns, window.end_ns) == (125, 200)
    assert window.calls == [8, 3]  # 130..200 and 145, 165, 185
    assert window.throughput(2) == pytest.approx(2 * 11 / (75 / 1e9))
    disjoint = common_window([s0, s1], [e0, e0 + 1000])
    assert disjoint.throughput(1) is None


def layout_cell(instances: int, cores: int, mean: float, thr: float | None, **kw: Any) -> Cell:
    return cell("short", "pytorch", "icelake", mean, 2 * mean, instances=instances,
                cores_per_instance=cores, throughput=thr, **kw)  # fmt: skip


def test_reports_show_layouts_as_their_own_columns() -> None:
    cells = [
        cell("short", "pytorch", "icelake", 10.0, 20.0, first=1),
        layout_cell(2, 1, 12.0, 160.0, first=2),
        layout_cell(1, 2, 8.0, 125.0, first=3),
    ]
    table = wide_table(cells, ("throughput",))
    labels = [c.column_label for c in cells]
    assert labels == ["pytorch@icelake", "pytorch@icelake{2x1}", "pytorch@icelake{1x2}"]
    assert len(table.columns) == 3
    for c in cells:  # each printed label is a baseline that finds exactly its column
        assert find_baseline(cells, parse_selector(c.column_label)) == c.column_key
    assert table.cell(table.rows[0], cells[1].column_key).value("throughput") == 160.0


def test_cost_of_a_throughput_cell_uses_its_aggregate() -> None:
    latency = cell("short", "pytorch", "icelake", 10.0, 20.0)
    latency.with_cost(3.6, "USD")  # 3.6/h = 0.001/s; 100 seq/s → $10 per million
    assert latency.cost_per_million == pytest.approx(10.0)
    both = layout_cell(2, 1, 10.0, 200.0)  # two copies: twice the sequences per hour
    both.with_cost(3.6, "USD")
    assert both.cost_per_million == pytest.approx(5.0)


def test_pooling_several_jobs_keeps_a_throughput_cells_aggregate() -> None:
    c = layout_cell(2, 1, 10.0, 180.0, results=2)
    unpooled(c, 20.0 * 2)
    assert c.throughput == 180.0  # the SQL mean of the jobs' aggregates, not batch / mean
    set_pooled(c, np.array([9.0, 11.0]))
    assert c.throughput == 180.0
    plain = cell("short", "pytorch", "icelake", 10.0, 20.0, results=2)
    set_pooled(plain, np.array([9.0, 11.0]))
    assert plain.throughput == pytest.approx(100.0)
