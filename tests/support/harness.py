"""Helpers for tests that run the real `farm` CLI and workers as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

FARM = str(Path(sys.executable).with_name("farm"))
REPO = Path(__file__).resolve().parents[2]
# The blog's two sentences, verbatim.
SHORT = "This is a really nice pair of shoes, I am completely satisfied with my purchase"
LONG = (
    "These Adidas Lite Racer shoes hit a nice sweet spot for comfort shoes. Despite being a "
    "little snug in the toe box, these are very comfortable to wear and provide nice support "
    "while wearing. I would stop short of saying they are good running shoes or cross-trainers "
    "because they simply lack the ankle and arch support most would desire in those type of "
    "shoes and the treads wear fairly quickly, but they are definitely comfortable. I actually "
    "walked around Disney World all day in these without issue if that is any reference. "
    "Bottom line, I use these as the shoes they are best; versatile, inexpensive, and "
    "comfortable, without expecting the performance of a high-end athletic sneaker or "
    "expecting the comfort of my favorite pair of slippers."
)


def farm_env(database_url: str, broker_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ, FARM_DATABASE_URL=database_url, HF_HUB_OFFLINE="1")
    env["FARM_BROKER_URL"] = broker_url or "redis://127.0.0.1:1/0"
    # `farm run` measures the host's GEMM peak once per database: small matrices in tests.
    env.setdefault("FARM_PEAK_SIZES", "64")
    env.setdefault("FARM_PEAK_REPEATS", "1")
    return env


def farm(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FARM, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def write_matrix(path: Path, **overrides: Any) -> Path:
    """A tiny matrix (1-layer replica, few calls): the mechanics, not the numbers."""
    matrix: dict[str, Any] = {
        "name": "tiny",
        "models": [{"name": "distilbert-base-uncased", "layers": 1}],
        "inputs": {"short": SHORT},
        "batch_sizes": [1, 2],
        "backends": ["pytorch"],
        "pools": ["a"],
        "protocol": {"warmup": 1, "iterations": 5},
    }
    matrix.update(overrides)
    path.write_text(yaml.safe_dump(matrix))
    return path


class WorkerProcess:
    """A real `farm worker` subprocess, stopped with SIGTERM (then SIGKILL) at the end."""

    def __init__(
        self,
        pool: str,
        name: str,
        env: dict[str, str],
        log: Path,
        cpus: str = "0",
        extra: Sequence[str] = (),
        threads: int = 1,
        verbose: bool = True,
        preexec_fn: Callable[[], None] | None = None,
        start_timeout: float = 60,
    ):
        """`verbose` runs `farm -v` (the tests read its job lines); the benchmarks run it
        quiet with their own thread count and a `preexec_fn` that resets the affinity."""
        self.name, self.log = name, log
        self._fh = log.open("w")
        args = [FARM, *(["-v"] if verbose else []), "worker", "--pool", pool, "--name", name]
        self.proc = subprocess.Popen(
            [*args, "--cpus", cpus, "--threads", str(threads), *extra],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,  # a benchmark resets its affinity before the worker pins
        )
        try:
            wait_for(lambda: "ready" in log.read_text() or self.proc.poll() is not None,
                     start_timeout)  # fmt: skip
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-3000:]}") from None
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited early:\n{log.read_text()}")

    def environ(self) -> str:
        """The environment the worker runs with (after any re-exec)."""
        return Path(f"/proc/{self.proc.pid}/environ").read_bytes().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def sql_rows(database_url: str, query: str, **params: Any) -> list[Any]:
    """The rows of one SQL query, on an engine of its own (disposed: no pool left behind)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params).all())
    finally:
        engine.dispose()


def job_states(database_url: str, campaign_id: int) -> dict[int, tuple[str, str, str | None]]:
    """job id → (pool, state, worker)."""
    rows = sql_rows(
        database_url, "SELECT id, pool, state, worker FROM job WHERE campaign_id = :c",
        c=campaign_id,
    )  # fmt: skip
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def count_rows(database_url: str, table: str) -> int:
    return int(sql_rows(database_url, f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608


def job_spec(pool: str = "a", batch: int = 1) -> Any:
    """A minimal JobSpec for repository tests (no model is ever loaded)."""
    from farm.jobs import JobSpec, ModelSpec

    return JobSpec(model=ModelSpec(name="m"), input_name="short", input_text="hello",
                   batch_size=batch, backend="pytorch", pool=pool)  # fmt: skip


def result_fields() -> dict[str, object]:
    """The columns of a result row, with made-up values."""
    return dict(worker="w", host="h", tokens=3, n=2, mean_ms=1.0, std_ms=0.1, min_ms=0.9,
                max_ms=1.1, p50_ms=1.0, p90_ms=1.1, p99_ms=1.1, samples=b"F1",
                model_identity={}, environment={}, setup_s=0.0, measure_s=0.1)  # fmt: skip


def job_result() -> Any:
    """A JobResult with the made-up values of result_fields (the optional fields unset)."""
    from farm.results import JobResult

    return JobResult(**result_fields())  # type: ignore[arg-type]
