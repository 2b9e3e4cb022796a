"""Results that could not reach the database are kept in local files, then written later.

One file per job (atomic rename), so several flushers (the worker, `farm recover`) can
race: the store writes a result at most once and the loser just deletes the file. A file
holds {"job_id": N, "lease": the writer's lease, "result": JobResult.to_json()}: the store
accepts it only while that lease still holds the job (no other attempt took it over);
a refused file is set aside as job-N.refused. Files of older workers have no "lease" and
are written as they always were (while the job has no result).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from farm.errors import NotFound
from farm.results import JobResult
from farm.store import JobStore, StoreUnavailable

log = logging.getLogger("farm.worker")


def save(spool_dir: str, job_id: int, lease: str, result: JobResult) -> Path:
    directory = Path(spool_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"job-{job_id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"job_id": job_id, "lease": lease, "result": result.to_json()}))
    os.replace(tmp, path)
    return path


def load(path: Path) -> tuple[int, str | None, JobResult]:
    """(job id, the writer's lease or None for an older worker's file, result)."""
    data = json.loads(path.read_text())
    lease = None if data.get("lease") is None else str(data["lease"])
    return int(data["job_id"]), lease, JobResult.from_json(data["result"])


def flush(store: JobStore, spool_dir: str) -> tuple[int, int]:
    """Write spooled results; returns (written, already there). Stops when the store is away.

    A result whose lease lost the job to another attempt is refused, logged and set aside."""
    written = duplicate = 0
    for path in sorted(Path(spool_dir).expanduser().glob("job-*.json")):
        try:
            job_id, lease, result = load(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a file another flusher just removed, or half-written: skip
        try:
            done = store.complete(job_id, result, lease)
        except NotFound:
            aside = path.with_suffix(".orphan")
            log.error("spool: job %s no longer exists; result set aside as %s", job_id, aside)
            os.replace(path, aside)
            continue
        except StoreUnavailable as exc:
            log.warning("spool flush stopped: database unavailable (%s)", exc)
            break
        if done.outcome == "refused":
            aside = path.with_suffix(".refused")
            log.error("spool: job %s: result of lease %s refused: %s; set aside as %s",
                      job_id, lease, done.reason, aside)  # fmt: skip
            os.replace(path, aside)
            continue
        written += done.outcome == "written"
        duplicate += done.outcome == "duplicate"
        path.unlink(missing_ok=True)
    if written or duplicate:
        log.info("spool: %s result(s) written, %s already there", written, duplicate)
    return written, duplicate
