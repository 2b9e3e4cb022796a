"""Results that could not reach the database are kept in local files, then written later.

One file per job (atomic rename), so several flushers (the worker, `farm recover`) can
race: the store writes a result at most once and the loser just deletes the file. A file
holds {"job_id": N, "result": JobResult.to_json()}, as it always has.
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


def save(spool_dir: str, job_id: int, result: JobResult) -> Path:
    directory = Path(spool_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"job-{job_id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"job_id": job_id, "result": result.to_json()}))
    os.replace(tmp, path)
    return path


def load(path: Path) -> tuple[int, JobResult]:
    data = json.loads(path.read_text())
    return int(data["job_id"]), JobResult.from_json(data["result"])


def flush(store: JobStore, spool_dir: str) -> tuple[int, int]:
    """Write spooled results; returns (written, already there). Stops when the store is away."""
    written = duplicate = 0
    for path in sorted(Path(spool_dir).expanduser().glob("job-*.json")):
        try:
            job_id, result = load(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a file another flusher just removed, or half-written: skip
        try:
            if store.complete(job_id, result):
                written += 1
            else:
                duplicate += 1
        except NotFound:
            aside = path.with_suffix(".orphan")
            log.error("spool: job %s no longer exists; result set aside as %s", job_id, aside)
            os.replace(path, aside)
            continue
        except StoreUnavailable as exc:
            log.warning("spool flush stopped: database unavailable (%s)", exc)
            break
        path.unlink(missing_ok=True)
    if written or duplicate:
        log.info("spool: %s result(s) written, %s already there", written, duplicate)
    return written, duplicate
