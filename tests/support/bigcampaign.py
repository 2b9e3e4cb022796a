"""Large campaigns made fast, for benchmarks/scale.py and the tests of large campaigns.

`selftest_matrix(n)`: a matrix of exactly n selftest cells (n a multiple of 100). `seed`:
a campaign of n jobs written in bulk, then fake results and end states written in SQL by
the database itself (`INSERT ... SELECT`), so a 100,000-job campaign takes seconds.
"""

from __future__ import annotations

from typing import Any

INPUTS = 100
AXES = (("batch_sizes", 32), ("backends", 32), ("pools", 100))


def selftest_matrix(jobs: int, name: str = "scale") -> dict[str, Any]:
    """`jobs` cells: 100 inputs × batch sizes × selftest option sets × pools."""
    if jobs % INPUTS or jobs <= 0:
        raise ValueError(f"jobs must be a positive multiple of {INPUTS}, not {jobs}")
    sizes = _factor(jobs // INPUTS)
    batches, backends, pools = sizes
    return {
        "name": name,
        "models": ["selftest"],
        "inputs": {f"in{i}": f"scale input number {i}" for i in range(INPUTS)},
        "batch_sizes": list(range(1, batches + 1)),
        "backends": [{"name": "selftest", "options": {"work_ms": w + 1}} for w in range(backends)],
        "pools": [f"p{i}" for i in range(pools)],
        "protocol": {"warmup": 0, "iterations": 5},
    }


def _factor(rest: int) -> tuple[int, int, int]:
    """rest = batches × backends × pools within the matrix's limits, fewest pools first."""
    for pools in range(1, AXES[2][1] + 1):
        if rest % pools:
            continue
        left = rest // pools
        for batches in range(AXES[0][1], 0, -1):
            if left % batches == 0 and left // batches <= AXES[1][1]:
                return batches, left // batches, pools
    raise ValueError(f"{rest * INPUTS} jobs do not fit the matrix's axis limits")


FAKE_RESULTS = """
INSERT INTO result (job_id, created_at, worker, host, tokens, n, mean_ms, std_ms, min_ms,
    max_ms, p50_ms, p90_ms, p99_ms, samples, model_identity, environment, setup_s, measure_s,
    verdict, reasons, random_weights, stack)
SELECT id, now(), 'w-' || pool, 'host-' || pool, 8, 5, 1.0 + id % 7, 0.1, 0.9 + id % 7,
    1.5 + id % 7, 1.0 + id % 7, 1.2 + id % 7, 1.4 + id % 7, '\\x00'::bytea,
    '{"weights": "random"}', '{}', 0.1, 0.01, 'valid', '[]', true, 'main'
FROM job WHERE campaign_id = :c AND id % 10 <> 0
"""
END_STATES = """
UPDATE job SET state = CASE WHEN id % 10 <> 0 THEN 'succeeded' WHEN id % 20 = 0 THEN 'failed'
    ELSE 'queued' END,
  error = CASE WHEN id % 20 = 0 THEN 'fake failure' END,
  attempts = 1, started_at = now(), finished_at = now()
WHERE campaign_id = :c
"""


def seed(database_url: str, jobs: int) -> int:
    """A campaign of `jobs` selftest jobs, nine in ten succeeded with a fake result, the
    rest failed or queued; returns its id. PostgreSQL only (the fake rows are its SQL)."""
    from sqlalchemy import text

    from farm.db import bulk
    from farm.db.session import session_factory, transaction
    from farm.matrix import parse_matrix

    spec = parse_matrix(selftest_matrix(jobs, f"scale-{jobs}"))
    specs = spec.expand(max_jobs=jobs)
    with transaction(session_factory(database_url)) as session:
        campaign, _ = bulk.store_campaign(session, spec.name, spec.model_dump(mode="json"), specs)
        session.execute(text(FAKE_RESULTS), {"c": campaign.id})
        session.execute(text(END_STATES), {"c": campaign.id})
        session.execute(text("ANALYZE job"))
        session.execute(text("ANALYZE result"))
        return campaign.id
