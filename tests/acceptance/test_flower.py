"""`farm flower` (issue 13 §5): Flower on Farm's broker lists a running Farm worker and its
tasks, through Farm's JSON-only Celery app, and never shows the broker's password."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import FARM, WorkerProcess, farm, farm_env, wait_for, write_matrix
from tests.support.services import IN_CI, RedisServer, free_port, redis_binary

pytestmark = pytest.mark.acceptance

PASSWORD = "flower-test-s3cret"  # noqa: S105 (a throw-away Redis's)
WORKER = "a@flower-test"  # a name with '@' is Celery's node name as it is


def _needs_flower() -> None:
    try:
        import flower  # noqa: F401
    except ImportError:
        reason = "flower is not installed (scripts/install.sh .venv dev installs it)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[str]:
    """A private Redis that asks for a password; its URL, password included."""
    import redis

    server = RedisServer(redis_binary(), tmp_path / "redis.log")
    try:
        client = redis.Redis(port=server.port)
        client.config_set("requirepass", PASSWORD)
        client.close()
        yield f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    finally:
        server.kill()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        return json.loads(response.read())


def test_flower_lists_the_farm_worker_and_its_tasks(
    migrated_pg: str, locked_redis: str, tmp_path: Path
) -> None:
    _needs_flower()
    env = {**farm_env(migrated_pg, locked_redis), "FLOWER_UNAUTHENTICATED_API": "true"}
    worker = WorkerProcess("a", WORKER, env, tmp_path / "worker.log")
    port = free_port()
    log = tmp_path / "flower.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([FARM, "flower", "--port", str(port)], env=env, stdout=fh,
                                stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}/api"
    seen: list[str] = []

    def listed(path: str, found: Any) -> bool:
        try:
            body = _get(base + path)
        except (OSError, urllib.error.URLError, ValueError):
            assert proc.poll() is None, f"flower exited:\n{log.read_text()}"
            return False
        seen.append(json.dumps(body))
        return bool(found(body))

    try:
        wait_for(lambda: listed("/workers?refresh=1", lambda b: WORKER in b), 60)
        workers = json.loads(seen[-1])
        assert workers[WORKER]["stats"]["pool"]["max-concurrency"] == 1
        assert set(workers[WORKER]["registered"]) >= {"farm.run_job"}
        # Flower turns the worker's task events on (every 5 s): wait for that, then submit.
        wait_for(lambda: "enabled by remote" in worker.log.read_text(), 30)

        matrix = write_matrix(
            tmp_path / "m.yaml", name="flower", models=["selftest"], inputs={"in": "a b c"},
            batch_sizes=[1], backends=[{"name": "selftest", "options": {"work_ms": 5}}],
            pools=["a"], protocol={"warmup": 0, "iterations": 3},
        )  # fmt: skip
        sub = farm("submit", str(matrix), env=env, timeout=60)
        assert sub.returncode == 0, sub.stderr

        def succeeded(tasks: dict[str, Any]) -> bool:
            return any(t["name"] == "farm.run_job" and t["state"] == "SUCCESS"
                       and t["worker"] == WORKER for t in tasks.values())  # fmt: skip

        wait_for(lambda: listed("/tasks", succeeded), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        worker.stop()
    output = log.read_text()
    assert f"Visit me at http://127.0.0.1:{port}" in output, output
    assert f":**@127.0.0.1:{locked_redis.rsplit(':', 1)[1]}" in output, output
    for text in [output, worker.log.read_text(), *seen]:
        assert PASSWORD not in text
    assert "ContentDisallowed" not in worker.log.read_text()  # Flower spoke JSON to it


def test_farm_flower_without_flower_installed_says_how_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "flower"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('flower is blocked in this test')\n")
    env = farm_env("sqlite:///" + str(tmp_path / "farm.db"))
    env["PYTHONPATH"] = f"{blocker.parent}:{env.get('PYTHONPATH', '')}"
    out = farm("flower", env=env, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error: Flower is not installed: pip install 'flower>=2,<3' "
        "(in the worker profile: scripts/install.sh VENV worker)"
    )


def test_farm_flower_with_the_broker_down_is_one_line(tmp_path: Path) -> None:
    _needs_flower()
    env = farm_env("sqlite:///" + str(tmp_path / "farm.db"), f"redis://:{PASSWORD}@127.0.0.1:1/0")
    out = farm("flower", "--port", str(free_port()), env=env, timeout=60)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("Error: broker redis://:***@127.0.0.1:1/0 is unreachable"), line
