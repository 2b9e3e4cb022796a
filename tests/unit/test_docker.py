"""The docker/ files: the worker image installs through scripts/install.sh, compose resolves."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def test_dockerfile_installs_the_worker_through_the_install_script() -> None:
    instructions = _instructions(DOCKER / "Dockerfile.worker")
    runs = [args for instruction, args in instructions if instruction == "RUN"]
    assert any(re.search(r"scripts/install\.sh\s+\S+\s+worker(\s|$)", run) for run in runs), runs
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert froms == ["python:3.11-slim-bookworm"]
    envs = " ".join(args for instruction, args in instructions if instruction == "ENV")
    assert "HF_HUB_OFFLINE=1" in envs
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "the worker must not run as root"
    assert ("ENTRYPOINT", '["farm"]') in instructions


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    exe = shutil.which("docker-compose")
    if exe is None:
        reason = "docker-compose is not on PATH (apt-get install docker-compose)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    proc = subprocess.run(
        [exe, "-f", str(DOCKER / "compose.yaml"), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert isinstance(config, dict)
    return config


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_compose_config_resolves_the_services(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert {"redis", "postgres", "migrate", "worker-icelake", "worker-sapphirerapids"} <= set(
        services
    )
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "healthcheck" in services["postgres"]
    assert _command(services["migrate"]) == "db upgrade"


@pytest.mark.parametrize("pool", ["icelake", "sapphirerapids"])
def test_compose_has_one_worker_per_pool(compose_config: dict[str, Any], pool: str) -> None:
    worker = compose_config["services"][f"worker-{pool}"]
    command = _command(worker)
    assert command.startswith("worker ")
    assert f"--pool {pool}" in command
    assert {"FARM_DATABASE_URL", "FARM_BROKER_URL"} <= set(worker["environment"])
    # The schema exists before any worker starts.
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.worker"


@pytest.mark.parametrize("pool", ["icelake", "sapphirerapids"])
def test_compose_workers_scale_with_a_name_and_cpus_each(
    compose_config: dict[str, Any], pool: str
) -> None:
    """`--scale worker-POOL=3` gives three workers: distinct hostnames (hence names
    POOL@<container id>) and each its own CPU claimed in the shared lock volume."""
    worker = compose_config["services"][f"worker-{pool}"]
    assert not {"hostname", "container_name"} & set(worker), "replicas would share a name"
    command = _command(worker)
    assert "--name" not in command and "--claim 1" in command, command
    lock_dir = worker["environment"]["FARM_CPU_LOCK_DIR"]
    mounts = {(v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
              for v in worker["volumes"]}  # fmt: skip
    assert ("farm-cpus", lock_dir) in mounts
    assert "farm-cpus" in compose_config["volumes"]
    # A drained worker exits 0 and stays down; a crashed one comes back.
    assert worker["restart"] == "on-failure"


def test_compose_flower_is_an_optional_service(compose_config: dict[str, Any]) -> None:
    flower = compose_config["services"]["flower"]
    assert flower["profiles"] == ["monitor"]
    assert _command(flower) == "flower --address 0.0.0.0 --port 5555"
    (port,) = flower["ports"]
    published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}:"
    assert published.startswith("127.0.0.1:5555:"), port
    assert flower["environment"]["FARM_BROKER_URL"] == "redis://redis:6379/0"


def test_the_image_makes_the_cpu_lock_folder_for_its_user() -> None:
    runs = [args for instruction, args in _instructions(DOCKER / "Dockerfile.worker")
            if instruction == "RUN"]  # fmt: skip
    assert any("/var/lib/farm/cpus" in run and "chown farm" in run for run in runs), runs
