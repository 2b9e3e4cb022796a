"""Issue 13 §1: a farm of six hosts on one machine, and the network faults real farms meet.

Real `farm worker` processes run in network namespaces (tests/support/testbed.py), each
under its own hostname; `farm` runs from the root namespace. Faults are silent drops.
Nobody runs `farm recover`: the workers' own periodic recovery must re-queue dead leases.
Every drill ends with its row in the ledger (lost = duplicated = 0, from the database).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.support.harness import farm, sql_rows
from tests.support.ledger import Ledger
from tests.support.testbed import Testbed

TTL = 6  # FARM_LEASE_TTL in the bed (tests/support/testbed.py WORKER_ENV)
HANG = 10  # every database and broker call returns or fails within this many seconds


# --- helpers ------------------------------------------------------------------------------


def until(bed: Testbed, what: str, predicate: Callable[[], bool], timeout: float) -> None:
    """Poll (bounded in time) until `predicate`; on timeout, fail with the workers' logs."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n} ---\n{w.text()[-2500:]}" for n, w in bed.workers.items())
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")
        time.sleep(0.1)


def submit(bed: Testbed, tmp: Path, name: str, pools: list[str], inputs: int = 1,
           work_ms: float = 50, iterations: int = 40, warmup: int = 2) -> int:  # fmt: skip
    matrix = {"name": name, "models": ["selftest"], "batch_sizes": [1], "pools": pools,
              "inputs": {f"in{i}": f"bed input number {i}" for i in range(inputs)},
              "backends": [{"name": "selftest", "options": {"work_ms": work_ms}}],
              "protocol": {"warmup": warmup, "iterations": iterations}}  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(matrix))
    out = farm("submit", str(path), env=bed.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def jobs(bed: Testbed, campaign: int) -> list[dict[str, Any]]:
    query = ("SELECT j.id, j.pool, j.state, j.worker, j.attempts, j.history, j.lease_until, "
             "r.host, r.worker AS wrote FROM job j LEFT JOIN result r ON r.job_id = j.id "
             "WHERE j.campaign_id = :c ORDER BY j.id")  # fmt: skip
    rows = sql_rows(bed.database_url, query, c=campaign)
    return [dict(r._mapping) for r in rows]


def running(bed: Testbed, campaign: int, timeout: float = 60) -> dict[str, Any]:
    """The campaign's one job, once a worker holds it."""
    until(bed, f"campaign {campaign} to run",
          lambda: jobs(bed, campaign)[0]["state"] == "running", timeout)  # fmt: skip
    return jobs(bed, campaign)[0]


def ended(bed: Testbed, campaign: int, timeout: float = 90) -> list[dict[str, Any]]:
    until(bed, f"campaign {campaign} to end",
          lambda: all(j["state"] in ("succeeded", "failed") for j in jobs(bed, campaign)),
          timeout)  # fmt: skip
    return jobs(bed, campaign)


def host_of(worker: str) -> str:
    return worker.split("@")[1]  # default names: POOL@HOSTNAME


def refused(job: dict[str, Any], host: str) -> bool:
    return any("refused" in (h.get("error") or "") and (h.get("lease") or "").startswith(host)
               for h in job["history"] or [])  # fmt: skip


def hosts_table(bed: Testbed) -> dict[str, list[str]]:
    out = farm("hosts", env={**bed.env(), "COLUMNS": "400"}, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.stdout.splitlines()]
    return {r[0]: r for r in rows if len(r) > 10 and "@" in r[0]}


# --- the drills ---------------------------------------------------------------------------


def test_matrix_runs_each_job_on_a_host_of_its_pool(bed: Testbed, ledger: Ledger,
                                                    tmp_path: Path) -> None:  # fmt: skip
    campaign = submit(bed, tmp_path, "pools", ["a", "b", "c"], inputs=4, iterations=10)
    done = ended(bed, campaign, timeout=180)
    ledger.account(bed, "matrix over 3 pools x 2 hosts", [campaign])
    assert len(done) == 12 and all(j["state"] == "succeeded" for j in done), done
    for j in done:
        assert j["host"] in {f"{j['pool']}1", f"{j['pool']}2"}, j
    table = hosts_table(bed)
    assert set(table) == {f"{h.pool}@{h.name}" for h in bed.hosts.values()}, table
    for name, row in table.items():
        pool, hostname, stack, seen, live = row[1], row[2], row[5], row[10], row[11]
        assert (pool, hostname) == (name.split("@")[0], host_of(name)), row
        assert stack == "main" and live == "yes", row
        assert re.fullmatch(r"\d+ s ago", seen) and int(seen.split()[0]) < 30, row


def test_partition_mid_job_requeued_without_recover(bed: Testbed, ledger: Ledger,
                                                    tmp_path: Path) -> None:  # fmt: skip
    """The job's timed phase is 8 s, so the other host still holds it when the link comes
    back and the first host's late result meets its lease (refused, not a duplicate)."""
    campaign = submit(bed, tmp_path, "partition", ["a"], iterations=160)
    first = host_of(running(bed, campaign)["worker"])
    other = next(h.name for h in bed.hosts.values() if h.pool == "a" and h.name != first)
    until(bed, "the timed phase to begin (its lease extended)",
          lambda: jobs(bed, campaign)[0]["lease_until"] is not None, 30)  # fmt: skip
    expires = jobs(bed, campaign)[0]["lease_until"]  # no heartbeat in a timed phase
    bed.partition(first)
    bound = 16 + 3 * TTL + 20  # its lease: the phase's bound (2 x 8 s) + TTL; then recovery
    try:
        until(bed, f"{other} to run the job of the cut {first} (nobody runs farm recover)",
              lambda: jobs(bed, campaign)[0]["worker"] == f"a@{other}", bound)  # fmt: skip
    finally:
        bed.heal(first)
    until(bed, f"{first}'s late result to be refused while {other} holds the job",
          lambda: refused(jobs(bed, campaign)[0], first), 30)  # fmt: skip
    (job,) = ended(bed, campaign)
    ledger.account(bed, "partition a worker host mid-job", [campaign],
                   note=f"{first} cut, {other} ran it, late result refused")  # fmt: skip
    assert job["state"] == "succeeded" and job["wrote"] == f"a@{other}", job
    assert job["attempts"] == 2, job
    assert {h.get("attempt") for h in job["history"]} == {1}, job["history"]
    lost = next(h for h in job["history"] if h["lease"].startswith(first) and "refused" not in
                h["error"])  # fmt: skip
    late = (_utc(datetime.fromisoformat(lost["at"])) - _utc(expires)).total_seconds()
    print(f"re-queued {late:.2f} s after its lease expired at {expires} ({lost})")
    assert late < 2 * TTL, f"re-queued {late:.1f} s after the lease expired: {job['history']}"


def test_database_cut_result_spooled_then_written(bed: Testbed, ledger: Ledger,
                                                  tmp_path: Path) -> None:  # fmt: skip
    """A 15 s timed phase: its lease extension (2 x 15 s + TTL) outlasts the phase, the
    failed write (at most HANG s) and its retries, so nobody else may run the job."""
    campaign = submit(bed, tmp_path, "dbcut", ["b"], iterations=300)
    host = host_of(running(bed, campaign)["worker"])
    spool = bed.spool(bed.hosts[host])
    until(bed, "the timed phase to begin (its lease extended)",
          lambda: jobs(bed, campaign)[0]["lease_until"] is not None, 30)  # fmt: skip
    bed.cut(host, "db")
    try:
        until(bed, f"{host} to spool its result",
              lambda: any(spool.glob("job-*.json")), 15 + 2 * HANG + 5)  # fmt: skip
    finally:
        bed.heal(host, "db")
    (job,) = ended(bed, campaign, timeout=30)
    ledger.account(bed, "database cut from one host", [campaign], note=f"{host} spooled")
    assert job["state"] == "succeeded" and job["wrote"] == f"b@{host}", job
    assert job["attempts"] == 1, job
    assert not list(spool.iterdir()), "the spool is flushed, nothing set aside"


def test_broker_cut_worker_reconnects(bed: Testbed, ledger: Ledger, tmp_path: Path) -> None:
    bed.workers["c2"].stop()  # c1 alone serves pool c
    bed.cut("c1", "redis")
    try:
        campaign = submit(bed, tmp_path, "brokercut", ["c"], inputs=3, iterations=10)
        until(bed, "c1 to give up its stale broker connection and dial again",
              lambda: bed.dialing("c1", "redis"), 2 * HANG + 5)  # fmt: skip
    finally:
        bed.heal("c1", "redis")
    done = ended(bed, campaign, timeout=90)
    ledger.account(bed, "broker cut from one host", [campaign], note="c1 reconnected")
    assert all(j["state"] == "succeeded" and j["wrote"] == "c@c1" for j in done), done


# Run inside a host: open Farm's own database engine and broker connection, say "ready",
# and once told (the link is down by then) time one call on each of these live connections.
PROBE = """
import sys, time
from sqlalchemy import text
from farm.db.session import get_engine
from farm.settings import Settings
from farm.workers.app import create_app
settings = Settings.from_env()
engine = get_engine(settings.database_url)
with engine.connect() as c:
    c.execute(text("SELECT 1"))
conn = create_app(settings).connection_for_write()
client = conn.default_channel.client
client.ping()
print("ready", flush=True)
sys.stdin.readline()
for name, call in (("database", lambda: engine.connect().execute(text("SELECT 1"))),
                   ("broker", client.ping)):
    began = time.monotonic()
    try:
        call()
        outcome = "returned"
    except Exception as exc:
        outcome = type(exc).__name__
    print(name, outcome, round(time.monotonic() - began, 1), flush=True)
"""


def test_no_call_hangs_when_a_link_goes_down(bed: Testbed) -> None:
    host, worker = bed.hosts["a1"], bed.workers["a1"]
    start = len(worker.text())
    probe = subprocess.Popen(bed.in_host(host, [sys.executable, "-c", PROBE]), env=bed.env(host),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert probe.stdout is not None and probe.stdin is not None
        assert probe.stdout.readline().strip() == "ready", probe.communicate(timeout=30)
        bed.partition("a1")
        cut_at = time.time()
        out, _ = probe.communicate("go\n", timeout=4 * HANG)
    finally:
        probe.kill()
    print(f"calls on live connections of a cut host: {out.strip()!r}")
    for line in out.strip().splitlines():
        name, outcome, took = line.split()
        assert outcome != "returned" and float(took) < HANG, f"{name}: {line}"
    try:
        for command in (["status"], ["hosts"]):
            began = time.monotonic()
            out = bed.run(bed.hosts["a1"], *command, timeout=120)
            took = time.monotonic() - began
            print(f"farm {command[0]} in a cut host: {took:.1f} s, {out.stderr.strip()!r}")
            assert out.returncode != 0 and "unreachable" in out.stderr, out
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert took < HANG + 5, f"farm {command[0]} took {took:.1f} s"
        until(bed, "a1 to log its heartbeat failure",
              lambda: "heartbeat failed" in worker.text()[start:], 2 * HANG)  # fmt: skip
        logged = _stamp(worker.text()[start:], "heartbeat failed") - cut_at
        print(f"a1 logged its heartbeat failure {logged:.1f} s after the cut")
        assert logged < HANG + 5, "the heartbeat's calls hung"  # + the beat's own 1 s wait
    finally:
        bed.heal("a1")
    seen = time.monotonic()
    until(bed, "a1 to be seen again", lambda: _seen_within(bed, "a@a1", 3), 30)
    print(f"a1 seen again {time.monotonic() - seen:.1f} s after the heal")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(log: str, what: str) -> float:
    """The epoch time of the first log line that says `what` (logging's local time)."""
    line = next(x for x in log.splitlines() if what in x)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _seen_within(bed: Testbed, name: str, seconds: float) -> bool:
    rows = sql_rows(bed.database_url, "SELECT extract(epoch FROM now() - last_seen) FROM worker "
                    "WHERE name = :n", n=name)  # fmt: skip
    return bool(rows) and float(rows[0][0]) < seconds


def test_a_skewed_clock_is_judged_by_the_database(bed: Testbed, ledger: Ledger,
                                                  tmp_path: Path) -> None:  # fmt: skip
    """b1 runs 5 minutes behind, c1 5 minutes ahead (libfaketime)."""
    bed.workers["b2"].stop()
    bed.workers["c2"].stop()
    bed.start_worker("b1", skew="-300")
    bed.start_worker("c1", skew="+300")
    try:
        table = hosts_table(bed)
        for name in ("b@b1", "c@c1"):
            assert table[name][11] == "yes", f"{name} declared dead: {table[name]}"
            assert 0 <= int(table[name][10].split()[0]) < 30, table[name]
        # b1, behind: its job outlives several TTLs and b2 (back, recovering) must not take it.
        slow = submit(bed, tmp_path, "behind", ["b"], iterations=300)  # 15 s timed
        assert running(bed, slow)["worker"] == "b@b1"
        bed.start_worker("b2")
        # c1, ahead: stopped mid-job, it must not keep its lease past the TTL.
        stuck = submit(bed, tmp_path, "ahead", ["c"])
        assert running(bed, stuck)["worker"] == "c@c1"
        bed.workers["c1"].signal(signal.SIGSTOP)
        bed.start_worker("c2")
        until(bed, "c2 to take over the job of the stopped c1",
              lambda: jobs(bed, stuck)[0]["worker"] == "c@c2", 4 * TTL + 20)  # fmt: skip
        (done,) = ended(bed, stuck)
        bed.workers["c1"].signal(signal.SIGCONT)
        until(bed, "c1, woken, to write nothing",
              lambda: re.search(r"abandoned|refused|discarded", bed.workers["c1"].text())
              is not None, 30)  # fmt: skip
        (kept,) = ended(bed, slow)
    finally:
        bed.workers["c1"].signal(signal.SIGCONT)
    ledger.account(bed, "clock 5 min off (behind: kept; ahead+STOP: taken over)", [slow, stuck])
    assert kept["wrote"] == "b@b1" and kept["attempts"] == 1, kept
    assert jobs(bed, stuck)[0]["wrote"] == "c@c2", jobs(bed, stuck)
