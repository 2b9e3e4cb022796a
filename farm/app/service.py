"""The application object: built once per command from the settings and its adapters.

The CLI (or any other front end) wires the job store and the broker in, then calls one use
case; the use cases live in the modules next to this one and name only the ports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from farm.app.calibrate import Calibrated, HostPeak, calibrate, calibrate_peak
from farm.app.campaigns import Rerun, delete, rerun, retry, submit
from farm.app.embedded import run_embedded
from farm.app.ports import (
    CampaignRow,
    CampaignStore,
    Cancelled,
    LocalRunner,
    OnProgress,
    Reclaimer,
    Retried,
    Stored,
    Summary,
)
from farm.app.recover import Recovery, recover
from farm.app.status import Status, status, wait_for_campaign
from farm.broker import DEFAULT_PRIORITY, Broker
from farm.errors import FarmError
from farm.jobs import JobSpec
from farm.matrix import Matrix
from farm.reports.selectors import Filters
from farm.settings import Settings


@dataclass
class Farm:
    settings: Settings
    store: CampaignStore
    broker: Broker | None = None

    def _broker(self) -> Broker:
        if self.broker is None:  # a wiring mistake, not a user's
            raise FarmError("this command was wired without a broker")
        return self.broker

    def submit(self, spec: Matrix, jobs: list[JobSpec], priority: str = DEFAULT_PRIORITY) -> Stored:
        matrix = spec.to_json()
        return submit(self.store, self._broker(), spec.name, matrix, jobs, priority)

    def wait(self, campaign_id: int, total: int, on_progress: OnProgress) -> None:
        wait_for_campaign(self.store, campaign_id, total, on_progress)

    def run_embedded(
        self,
        runner: LocalRunner,
        spec: Matrix,
        jobs: list[JobSpec],
        cpus: set[int] | None,
        threads: int | None,
        on_job: Callable[[int, int, int], None],
    ) -> int:
        matrix = spec.to_json()
        return run_embedded(
            self.store, runner, spec.name, matrix, jobs, cpus=cpus, threads=threads, on_job=on_job
        )

    def status(self, ref: str | None) -> Status:
        return status(self.store, ref, self.settings.worker_ttl_s)

    def list_campaigns(self, limit: int) -> list[tuple[CampaignRow, dict[str, int]]]:
        return self.store.list_campaigns(limit)

    def cancel(self, ref: str, filters: Filters | None = None) -> Cancelled:
        return self.store.cancel(ref, filters)

    def retry(self, ref: str) -> Retried:
        return retry(self.store, self._broker(), ref, self.settings.max_attempts)

    def rerun(self, ref: str, pool: str) -> Rerun:
        return rerun(self.store, self._broker(), ref, pool)

    def delete(self, ref: str, confirm: Callable[[Summary], object]) -> Summary:
        return delete(self.store, ref, confirm)

    def calibrate(
        self, pool: str, iterations: int, warmup: int, timeout: float, on_progress: OnProgress
    ) -> Calibrated:
        return calibrate(
            self.store,
            self._broker(),
            pool,
            iterations=iterations,
            warmup=warmup,
            timeout=timeout,
            worker_ttl_s=self.settings.worker_ttl_s,
            on_progress=on_progress,
        )

    def calibrate_peak(
        self, pool: str, sizes: Sequence[int], repeats: int, timeout: float
    ) -> list[HostPeak]:
        return calibrate_peak(
            self.store,
            self._broker(),
            pool,
            sizes=sizes,
            repeats=repeats,
            timeout=timeout,
            worker_ttl_s=self.settings.worker_ttl_s,
        )

    def recover(self, reclaim: Reclaimer, ref: str | None) -> Recovery:
        return recover(self.store, self._broker(), reclaim, ref)
