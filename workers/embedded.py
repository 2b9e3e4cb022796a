"""The worker side of `farm run` (embedded mode): farm.app.ports.LocalRunner in-process."""

from __future__ import annotations

from functools import cached_property

from farm.db.jobstore import DbJobStore
from farm.db.migrate import upgrade
from farm.db.session import session_factory
from farm.settings import Settings
from farm.workers.allocator import ensure_allocator
from farm.workers.execute import WorkerContext, execute_job
from farm.workers.peak import ensure_peak
from farm.workers.pinning import pin
from farm.workers.probe import host_fingerprint
from farm.workers.worker import register


class EmbeddedRunner:
    """Runs jobs here, as a worker named embedded@HOST of the pseudo-pool `embedded`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx: WorkerContext | None = None

    @cached_property
    def store(self) -> DbJobStore:
        return DbJobStore(session_factory(self.settings.database_url))

    def prepare(self, allocator: str, cpus: set[int] | None, threads: int | None) -> str:
        ensure_allocator(allocator)  # may re-exec this process with LD_PRELOAD set
        count = pin(cpus, threads)
        upgrade(self.settings.database_url)
        import torch

        torch.set_num_threads(count)
        fingerprint = host_fingerprint(allocator)
        name = f"embedded@{fingerprint['hostname']}"
        self.ctx = register(self.store, self.settings, name, "embedded", fingerprint, count, [])
        ensure_peak(self.store, self.ctx)
        return str(fingerprint["stack"])  # the jobs run in this venv's stack, not their home

    def run(self, job_id: int) -> None:
        if self.ctx is None:
            raise RuntimeError("EmbeddedRunner.run before prepare")
        execute_job(self.store, job_id, self.ctx)
