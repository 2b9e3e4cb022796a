"""Bundle files for the tests: a campaign with every column filled, and the damage a file
can take on its way (cut, a payload byte changed, a header edited)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.harness import job_spec, result_fields

Edit = Callable[[dict[str, Any]], None]


def split(path: Path) -> tuple[dict[str, Any], bytes]:
    """The header and the payload bytes of a bundle file."""
    line, _, body = gzip.decompress(path.read_bytes()).partition(b"\n")
    return json.loads(line), body


def join(path: Path, header: dict[str, Any], body: bytes) -> Path:
    path.write_bytes(gzip.compress(json.dumps(header).encode() + b"\n" + body))
    return path


def truncated(src: Path, dst: Path, keep: float = 0.6) -> Path:
    """The file cut short, as an interrupted copy leaves it."""
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * keep)])
    return dst


def tampered(src: Path, dst: Path) -> Path:
    """One byte of the payload changed (a digit of a number), the header kept as it was."""
    header, body = split(src)
    at = body.index(b'"mean_ms":') + len(b'"mean_ms":')
    digit = body[at : at + 1]
    assert digit.isdigit(), body[at : at + 20]
    changed = b"1" if digit != b"1" else b"2"
    return join(dst, header, body[:at] + changed + body[at + 1 :])


def edited(src: Path, dst: Path, header_edit: Edit | None = None,
           payload_edit: Edit | None = None) -> Path:  # fmt: skip
    """The header or the payload edited, its checksum made to match again: a file as a
    newer Farm (or a careful forger) would write it."""
    header, body = split(src)
    if payload_edit is not None:
        payload = json.loads(body)
        payload_edit(payload)
        body = json.dumps(payload).encode()
        header["sha256"] = hashlib.sha256(body).hexdigest()
    if header_edit is not None:
        header_edit(header)
    return join(dst, header, body)


def full_result() -> dict[str, Any]:
    """A result with every optional field set too (nothing left to a default)."""
    return {
        **result_fields(),
        "samples": bytes(range(256)) * 3,
        "model_identity": {"name": "m", "weights": "random", "weights_sha256": "ab" * 32},
        "environment": {"host": {"stack": "main", "stack_lock": "f00d", "cpu": "x"}},
        "stats": {"mean": {"value": 1.0, "ci": [0.9, 1.1]}, "cv": 0.1},
        "verdict": "valid",
        "reasons": ["p99 not supported: 2 samples"],
        "warmup_samples": b"\x00\x01\xff",
        "throughput": 123.25,
        "first_call_ms": 9.5,
        "peak_rss_mb": 512.0,
        "output_check": {"status": "checked", "max_abs_logit_diff": 0.0},
        "flops": 1.5e9,
        "gflops": 0.1 + 0.2,  # a float that prints long
        "peak_gflops": 7.7,
        "efficiency_pct": 1.25,
        # text-generation's (every column carried, whatever the task)
        "ttft_samples": bytes(range(7, 255, 2)),
        "ttft_ms": 1.5,
        "ttft_p99_ms": 2.25,
        "tpot_ms": 0.75,
        "tpot_p99_ms": 1.125,
        "tokens_per_s": 0.1 + 0.7,
    }


def fill_campaign(url: str, name: str = "offline", worker: str = "w1") -> int:
    """A campaign of three ended jobs written straight into the database at `url`: one
    succeeded with a full result on `worker` (registered, with a fingerprint and a peak),
    one failed (its history), one cancelled. Returns its id."""
    from farm.db import repo
    from farm.db.campaigns import cancel_campaign
    from farm.db.session import session_factory, transaction
    from farm.results import JobResult

    factory = session_factory(url)
    with transaction(factory) as s:
        campaign = repo.create_campaign(s, name, {"name": name, "pools": ["spr"]},
                                        [job_spec("spr", 1), job_spec("spr", 2),
                                         job_spec("spr", 4)])  # fmt: skip
        ok, failing, cancelled = (job.id for job in campaign.jobs)
        repo.register_worker(s, name=worker, pool="spr", hostname="sprbox", pid=7, cpus="0-3",
                             threads=4, fingerprint={"cpu": "Sapphire Rapids", "cores": 4},
                             queues=["farm.spr"], allocator="default",
                             hardware_class="Intel Sapphire Rapids")  # fmt: skip
        repo.record_peak(s, worker, {"fp32_gflops": 7.7, "host": "sprbox"})
    with transaction(factory) as s:
        repo.claim_job(s, ok, worker, lease="sprbox:7")
        result = JobResult(**{**full_result(), "worker": worker, "host": "sprbox"})
        assert repo.complete_job(s, ok, result, "sprbox:7").outcome == "written"
        repo.claim_job(s, failing, worker, lease="sprbox:8")
        assert repo.fail_job(s, failing, "RuntimeError: boom", "sprbox:8")
    with transaction(factory) as s:
        assert cancel_campaign(s, str(campaign.id)).cancelled == 1
    with transaction(factory) as s:
        states = {job.id: job.state for job in repo.campaign_jobs(s, campaign.id)}
    assert states == {ok: "succeeded", failing: "failed", cancelled: "cancelled"}
    return campaign.id
