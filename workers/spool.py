"""Results that could not reach the database are kept in local files, then written later.

One file per job (atomic rename), so several flushers (the worker, `farm recover`) can
race: `complete_job` writes a result at most once and the loser just deletes the file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from farm.db import repo
from farm.db.session import transaction
from farm.errors import NotFound

log = logging.getLogger("farm.worker")
BINARY = ("samples", "warmup_samples")


def save(spool_dir: str, job_id: int, result: dict[str, Any]) -> Path:
    directory = Path(spool_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    data = {k: base64.b64encode(v).decode() if k in BINARY and v else v for k, v in result.items()}
    path = directory / f"job-{job_id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"job_id": job_id, "result": data}))
    os.replace(tmp, path)
    return path


def load(path: Path) -> tuple[int, dict[str, Any]]:
    data = json.loads(path.read_text())
    result = {k: base64.b64decode(v) if k in BINARY and v else v for k, v in data["result"].items()}
    return int(data["job_id"]), result


def flush(factory: sessionmaker[Session], spool_dir: str) -> tuple[int, int]:
    """Write spooled results; returns (written, already there). Stops at a database error."""
    written = duplicate = 0
    for path in sorted(Path(spool_dir).expanduser().glob("job-*.json")):
        try:
            job_id, result = load(path)
        except (OSError, ValueError, KeyError):
            continue  # a file another flusher just removed, or half-written: skip
        try:
            with transaction(factory) as session:
                if repo.complete_job(session, job_id, result):
                    written += 1
                else:
                    duplicate += 1
        except NotFound:
            aside = path.with_suffix(".orphan")
            log.error("spool: job %s no longer exists; result set aside as %s", job_id, aside)
            os.replace(path, aside)
            continue
        except SQLAlchemyError as exc:
            log.warning("spool flush stopped: database unavailable (%s)", type(exc).__name__)
            break
        path.unlink(missing_ok=True)
    if written or duplicate:
        log.info("spool: %s result(s) written, %s already there", written, duplicate)
    return written, duplicate
