"""Farm's side of a benchmark: a scratch PostgreSQL database and Redis db, `farm submit`,
a real worker through the tests' harness, and the bootstrap interval benchmarks report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.harness import WorkerProcess
from tests.support.plainloop import all_cpus

FARM = str(Path(sys.executable).with_name("farm"))
SCRATCH_DB = "farm_bench_overhead"
REDIS_DB = 13


def with_db(url: str, db: str | int) -> str:
    return f"{url.rsplit('/', 1)[0]}/{db}"


class Services:
    def __init__(self, postgres: str, redis_host: str):
        from sqlalchemy import create_engine, text

        self.admin = create_engine(with_db(postgres, "postgres"), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{SCRATCH_DB}"'))
        self.database_url = with_db(postgres, SCRATCH_DB)
        self.broker_url = with_db(redis_host, REDIS_DB)
        self._flush()
        from farm.db.migrate import upgrade

        upgrade(self.database_url)
        self.engine = create_engine(self.database_url)
        self.env = dict(
            os.environ,
            FARM_DATABASE_URL=self.database_url,
            FARM_BROKER_URL=self.broker_url,
            HF_HUB_OFFLINE="1",
        )
        self.env.pop("LD_PRELOAD", None)

    def _flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.broker_url, socket_connect_timeout=2)
        client.flushdb()
        client.close()

    def close(self) -> None:
        from sqlalchemy import text

        self.engine.dispose()
        from farm.db.session import get_engine

        get_engine(self.database_url).dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)'))
        self.admin.dispose()
        self._flush()

    def submit(self, matrix: Path) -> int:
        out = subprocess.run(  # noqa: S603 (our own executables)
            [FARM, "submit", str(matrix)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"farm submit failed: {out.stderr}")
        return int(out.stdout.strip().splitlines()[-1])

    def wait(self, campaign: int, timeout: float = 3600, poll: float = 0.2) -> list[Any]:
        """Poll until every job has ended; the results in job order."""
        from sqlalchemy import text

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                states = conn.execute(
                    text("SELECT state, error FROM job WHERE campaign_id = :c"), {"c": campaign}
                ).all()
                if any(s == "failed" for s, _ in states):
                    raise RuntimeError(f"campaign {campaign}: {[e for s, e in states if e]}")
                if states and all(s == "succeeded" for s, _ in states):
                    return list(
                        conn.execute(
                            text(
                                "SELECT r.mean_ms, r.environment, r.setup_s, r.measure_s, r.p99_ms "
                                "FROM result r "
                                "JOIN job j ON j.id = r.job_id WHERE j.campaign_id = :c "
                                "ORDER BY j.id"
                            ),
                            {"c": campaign},
                        ).all()
                    )
            time.sleep(poll)
        raise TimeoutError(f"campaign {campaign} unfinished after {timeout} s")


def start_worker(services: Services, pool: str, cpus: str, threads: int, log: Path) -> Any:
    """A real `farm worker` through the tests' harness: quiet, every CPU until it pins."""
    return WorkerProcess(pool, f"{pool}-w", services.env, log, cpus=cpus, threads=threads,
                         verbose=False, preexec_fn=all_cpus, start_timeout=120)  # fmt: skip


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bootstrap_median_ci(
    values: list[float], reps: int = 20_000, seed: int = 0
) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(values)
    rng = np.random.default_rng(seed)
    medians = np.median(arr[rng.integers(0, arr.size, size=(reps, arr.size))], axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    return float(lo), float(hi)
