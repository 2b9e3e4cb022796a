"""Protocols: profiles, command-line and per-cell overrides, consistency, allocators, call cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.errors import MatrixError
from farm.jobs import JobSpec, direct_queue, queue_for
from farm.matrix import load_matrix, parse_matrix
from farm.protocol import PROFILES, Protocol, resolve_profile

SHORT = "This is a really nice pair of shoes, I am completely satisfied with my purchase"


def matrix(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "p",
        "models": [{"name": "distilbert-base-uncased", "layers": 1}],
        "inputs": {"short": SHORT, "other": "Another sentence."},
        "batch_sizes": [1, 8],
        "backends": ["pytorch"],
        "pools": ["icelake"],
        "protocol": {"warmup": 10, "iterations": 100},
    }
    data.update(overrides)
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def load(tmp_path: Path, data: dict[str, Any], **cli: Any) -> list[JobSpec]:
    return load_matrix(write(tmp_path, data), model_roots=[], **cli).expand()


def only_protocol(jobs: list[JobSpec]) -> Protocol:
    protocols = {job.protocol for job in jobs}
    assert len(protocols) == 1, protocols
    return protocols.pop()


# --- profiles -----------------------------------------------------------------------------


def test_profiles_exist_with_the_documented_numbers() -> None:
    assert PROFILES["seed"] == {"warmup": 100, "iterations": 1000}
    assert PROFILES["quick"] == {"warmup": 5, "iterations": 40}
    adaptive = Protocol(**PROFILES["adaptive"])
    assert (adaptive.warmup, adaptive.iterations) == (50, 662)
    assert adaptive.target_ci == 0.02 and adaptive.target_percentile == 99
    assert (adaptive.max_iterations, adaptive.max_duration_s) == (20_000, 300)
    for name, fields in PROFILES.items():
        Protocol(**fields)  # every profile is a valid protocol
        assert resolve_profile(name) == fields


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_by_name_in_a_matrix(tmp_path: Path, name: str) -> None:
    protocol = only_protocol(load(tmp_path, matrix(protocol=name)))
    assert protocol == Protocol(**PROFILES[name])


def test_profile_with_overrides(tmp_path: Path) -> None:
    data = matrix(protocol={"profile": "adaptive", "iterations": 700, "target_ci": 0.05})
    protocol = only_protocol(load(tmp_path, data))
    assert (protocol.warmup, protocol.iterations, protocol.target_ci) == (50, 700, 0.05)
    assert protocol.max_iterations == 20_000


def test_resolve_profile_leaves_plain_protocols_alone() -> None:
    assert resolve_profile({"warmup": 1}) == {"warmup": 1}
    assert resolve_profile(None) is None


def test_unknown_profile_is_a_matrix_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match=r"protocol: unknown protocol profile 'fast'") as exc:
        load(tmp_path, matrix(protocol="fast"))
    assert "seed" in str(exc.value) and "adaptive" in str(exc.value)
    with pytest.raises(MatrixError, match=r"protocol: unknown protocol profile 'x'"):
        load(tmp_path, matrix(protocol={"profile": "x", "iterations": 5}))


# --- command-line overrides (what --warmup/--iterations/--profile/--target-ci pass) -------


def test_cli_warmup_and_iterations_override_the_file(tmp_path: Path) -> None:
    protocol = only_protocol(load(tmp_path, matrix(), warmup=3, iterations=17))
    assert (protocol.warmup, protocol.iterations) == (3, 17)


def test_cli_profile_replaces_the_files_protocol(tmp_path: Path) -> None:
    data = matrix(protocol={"warmup": 7, "iterations": 9, "max_cv": 2})
    protocol = only_protocol(load(tmp_path, data, profile="quick"))
    assert protocol == Protocol(**PROFILES["quick"])  # the file's max_cv is gone too


def test_cli_profile_with_cli_iterations(tmp_path: Path) -> None:
    protocol = only_protocol(load(tmp_path, matrix(), profile="adaptive", iterations=1000))
    assert (protocol.iterations, protocol.target_ci, protocol.warmup) == (1000, 0.02, 50)


def test_cli_target_ci_makes_a_fixed_protocol_adaptive(tmp_path: Path) -> None:
    protocol = only_protocol(load(tmp_path, matrix(), target_ci=0.05))
    assert protocol.target_ci == 0.05 and protocol.iterations == 100
    assert protocol.call_cap == 10_000


def test_cli_override_of_a_profile_named_in_the_file(tmp_path: Path) -> None:
    protocol = only_protocol(load(tmp_path, matrix(protocol="seed"), iterations=50))
    assert (protocol.warmup, protocol.iterations) == (100, 50)


def test_cli_none_overrides_are_ignored(tmp_path: Path) -> None:
    protocol = only_protocol(
        load(tmp_path, matrix(), warmup=None, iterations=None, profile=None, target_ci=None)
    )
    assert (protocol.warmup, protocol.iterations) == (10, 100)


def test_cli_iterations_above_the_profile_cap_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="max_iterations must be at least iterations"):
        load(tmp_path, matrix(protocol="adaptive"), iterations=30_000)


# --- per-cell overrides ---------------------------------------------------------------------


def test_protocol_override_matches_one_cell_only(tmp_path: Path) -> None:
    data = matrix(
        protocol_overrides=[
            {"input": "short", "batch_size": 8, "protocol": {"iterations": 500, "warmup": 20}}
        ]
    )
    jobs = load(tmp_path, data)
    assert len(jobs) == 4
    by_cell = {(j.input_name, j.batch_size): j.protocol for j in jobs}
    assert (by_cell[("short", 8)].iterations, by_cell[("short", 8)].warmup) == (500, 20)
    for cell in [("short", 1), ("other", 1), ("other", 8)]:
        assert (by_cell[cell].iterations, by_cell[cell].warmup) == (100, 10), cell


def test_protocol_override_keeps_the_base_fields_it_does_not_name(tmp_path: Path) -> None:
    data = matrix(
        protocol="adaptive",
        protocol_overrides=[{"batch_size": 8, "protocol": {"target_ci": 0.05}}],
    )
    jobs = load(tmp_path, data)
    for job in jobs:
        assert job.protocol.max_iterations == 20_000 and job.protocol.warmup == 50
        assert job.protocol.target_ci == (0.05 if job.batch_size == 8 else 0.02)


def test_later_overrides_win(tmp_path: Path) -> None:
    data = matrix(
        protocol_overrides=[
            {"batch_size": 8, "protocol": {"iterations": 200}},
            {"input": "short", "batch_size": 8, "protocol": {"iterations": 300}},
        ]
    )
    by_cell = {(j.input_name, j.batch_size): j.protocol.iterations for j in load(tmp_path, data)}
    assert by_cell == {("short", 1): 100, ("short", 8): 300, ("other", 1): 100, ("other", 8): 200}


def test_invalid_protocol_override_names_its_field(tmp_path: Path) -> None:
    data = matrix(protocol_overrides=[{"batch_size": 8, "protocol": {"max_iterations": 50}}])
    with pytest.raises(MatrixError, match=r"protocol_overrides\.0\.protocol: .*max_iterations"):
        load(tmp_path, data)
    data = matrix(protocol_overrides=[{"batch_size": 8, "protocol": {"iterationz": 5}}])
    with pytest.raises(MatrixError, match=r"protocol_overrides\.0\.protocol: iterationz"):
        load(tmp_path, data)


def test_protocol_override_needs_a_cell(tmp_path: Path) -> None:
    data = matrix(protocol_overrides=[{"protocol": {"iterations": 5}}])
    with pytest.raises(MatrixError, match="protocol_overrides.0"):
        load(tmp_path, data)


# --- consistency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "field"),
    [
        ({"min_duration_s": 10, "max_duration_s": 5}, "max_duration_s"),
        ({"iterations": 100, "max_iterations": 99}, "max_iterations"),
        ({"target_ci": 0.0001}, "protocol.target_ci"),
        ({"target_ci": 0.9}, "protocol.target_ci"),
        ({"max_cv": 0}, "protocol.max_cv"),
        ({"warmup_s": -1}, "protocol.warmup_s"),
        ({"iterations": 5.5}, "protocol.iterations"),
        ({"profile": "nope"}, "unknown protocol profile"),
    ],
)
def test_invalid_protocols_are_matrix_errors_naming_the_field(
    tmp_path: Path, protocol: dict[str, Any], field: str
) -> None:
    with pytest.raises(MatrixError) as exc:
        load(tmp_path, matrix(protocol=protocol))
    assert field in str(exc.value)
    assert "protocol" in str(exc.value)


def test_equal_durations_and_iterations_are_allowed() -> None:
    Protocol(min_duration_s=5, max_duration_s=5)
    Protocol(iterations=100, max_iterations=100)


# --- call cap -------------------------------------------------------------------------------


def test_call_cap() -> None:
    assert Protocol(iterations=1000).call_cap == 1000
    assert Protocol(iterations=100, max_iterations=250).call_cap == 250
    assert Protocol(iterations=100, target_ci=0.02).call_cap == 10_000
    assert Protocol(iterations=1000, target_ci=0.02).call_cap == 20_000
    assert Protocol(iterations=100, min_duration_s=3).call_cap == 10_000
    assert Protocol(**PROFILES["adaptive"]).call_cap == 20_000


# --- allocators -----------------------------------------------------------------------------


def test_allocators_dimension_doubles_the_jobs_and_names_queues() -> None:
    base = parse_matrix(matrix()).expand()
    both = parse_matrix(matrix(allocators=["default", "tcmalloc"])).expand()
    assert len(base) == 4 and len(both) == 8
    assert {j.allocator for j in both} == {"default", "tcmalloc"}
    queues: dict[str, set[str]] = {j.allocator: set() for j in both}
    for job in both:
        queues[job.allocator].add(job.queue)
    assert queues == {"default": {"farm.icelake"}, "tcmalloc": {"farm.icelake.tcmalloc"}}
    assert len({j.cell_key() for j in both}) == 8  # the allocator is part of the cell


def test_queue_names() -> None:
    assert queue_for("zen4") == "farm.zen4"
    assert queue_for("zen4", "jemalloc") == "farm.zen4.jemalloc"
    assert direct_queue("w1") == "farm.worker.w1"
    job = parse_matrix(matrix()).expand()[0]
    assert job.model_copy(update={"worker": "w1"}).queue == "farm.worker.w1"


def test_unknown_allocator_is_refused() -> None:
    with pytest.raises(MatrixError, match="allocators.0"):
        parse_matrix(matrix(allocators=["mimalloc"]))


def test_exclude_by_allocator(tmp_path: Path) -> None:
    data = matrix(
        allocators=["default", "tcmalloc"],
        exclude=[{"allocator": "tcmalloc", "batch_size": 8}],
    )
    jobs = load(tmp_path, data)
    assert len(jobs) == 6
    assert not any(j.allocator == "tcmalloc" and j.batch_size == 8 for j in jobs)
