"""Small campaigns with known raw samples, written straight into the database.

Every number a report shows can be worked out by hand from these samples (numpy's
linear-interpolation percentiles, as farm.stats):

campaign "blog" (model distilbert-base-uncased, batch 1, one job per cell)
  input  tokens  pytorch@icelake            ipex(dtype=bf16)@spr
  short  18      10 20 30 40 50  mean 30    5 10 15 20 25       mean 15
                 p99 49.6                   p99 24.8
  long   151     100..140 by 10  mean 120   40..80 by 10        mean 60
                 p99 139.6                  p99 79.6
  speed-up of ipex@spr against pytorch@icelake: mean 2.0 and 2.0, p99 2.0 and 1.7538

campaign "blog-repeat": short · pytorch@icelake again, samples 60 70. Reported with
"blog", that cell pools 10 20 30 40 50 60 70: mean 40, p99 69.4 (never the average of
49.6 and 69.9).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from farm.stats import NS_PER_MS, Summary, encode_samples

MODEL = "distilbert-base-uncased"
TEXTS = {"short": "a short sentence", "long": "a long sentence " * 20}
TOKENS = {"short": 18, "long": 151}
BLOG = {
    ("short", "pytorch", "icelake"): [10, 20, 30, 40, 50],
    ("short", "ipex", "spr"): [5, 10, 15, 20, 25],
    ("long", "pytorch", "icelake"): [100, 110, 120, 130, 140],
    ("long", "ipex", "spr"): [40, 50, 60, 70, 80],
}
REPEAT = {("short", "pytorch", "icelake"): [60, 70]}
OPTIONS = {"pytorch": {}, "ipex": {"dtype": "bf16"}}


def spec(input_name: str, backend: str, pool: str, batch: int = 1) -> Any:
    from farm.jobs import JobSpec, ModelSpec

    return JobSpec(
        model=ModelSpec(name=MODEL),
        input_name=input_name,
        input_text=TEXTS[input_name],
        batch_size=batch,
        backend=backend,
        backend_options=OPTIONS.get(backend, {}),
        pool=pool,
    )


def result(samples_ms: list[float], tokens: int, **extra: Any) -> dict[str, Any]:
    ns = (np.asarray(samples_ms, dtype=np.float64) * NS_PER_MS).astype(np.int64)
    summary = Summary.from_ns(ns)
    fields: dict[str, Any] = dict(
        worker="w",
        host="h",
        tokens=tokens,
        **summary.as_dict(),
        samples=encode_samples(ns),
        model_identity={"name": MODEL, "weights": "random", "weights_sha256": "abc123"},
        environment={},
        setup_s=0.0,
        measure_s=float(ns.sum()) / 1e9,
        verdict="valid",
        reasons=[],
    )
    fields.update(extra)
    return fields


def add_campaign(
    url: str,
    name: str,
    cells: dict[tuple[str, str, str], list[float]],
    extra: dict[tuple[str, str, str], dict[str, Any]] | None = None,
    pending: list[tuple[str, str, str]] | None = None,
    batch: int = 1,
) -> int:
    """A campaign whose jobs have these samples (ms); `pending` jobs stay queued."""
    from farm.db import repo
    from farm.db.models import Job, Result
    from farm.db.session import session_factory, transaction

    keys = list(cells) + list(pending or [])
    with transaction(session_factory(url)) as s:
        campaign = repo.create_campaign(
            s, name, {"name": name}, [spec(i, b, p, batch) for i, b, p in keys]
        )
        ids = [job.id for job in campaign.jobs]
        for key, job_id in zip(keys, ids, strict=True):
            if key not in cells:
                continue
            fields = result(cells[key], TOKENS[key[0]], **(extra or {}).get(key, {}))
            s.add(Result(job_id=job_id, **fields))
            job = s.get(Job, job_id)
            assert job is not None
            job.state = "succeeded"
        return campaign.id


def seed_blog(url: str) -> tuple[int, int]:
    from farm.db.migrate import upgrade

    upgrade(url)
    blog = add_campaign(url, "blog", BLOG)
    repeat = add_campaign(url, "blog-repeat", REPEAT)
    return blog, repeat
