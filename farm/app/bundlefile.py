"""The bundle file: one campaign, its jobs and results, carried from a host with no route
to the farm (`farm run --bundle`) to one that has (`farm push`).

One gzip stream holding two parts: a header line of JSON, then the payload (JSON). The
header names the format and its schema, the Farm that made it, when, the bundle's id and
the sha256 of the payload bytes, so a reader can refuse a file that is not a bundle, that
a newer Farm made, or that was cut or changed on the way, before it writes anything.
Pure: json, gzip and hashlib only; what the payload's rows hold is the store's business.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import FarmError

FORMAT = "farm-bundle"
SCHEMA = 1  # bump when a reader of this schema would misread a newer payload
MAX_PAYLOAD = 4 << 30  # decompressed bytes: a bundle of 100,000 jobs is well under this
GZIP_MAGIC = b"\x1f\x8b"
GZIP_HEADER = 10  # bytes of a gzip member's fixed header


class BundleError(FarmError):
    """A bundle file that cannot be read or loaded: nothing was written."""


@dataclass(frozen=True)
class Header:
    """What the first line of a bundle says about it."""

    id: str
    schema: int
    farm: str
    created: str
    sha256: str
    campaign: str  # its name
    jobs: int
    results: int

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema": self.schema, "farm": self.farm,
                "created": self.created, "id": self.id, "sha256": self.sha256,
                "campaign": self.campaign, "jobs": self.jobs, "results": self.results}  # fmt: skip


@dataclass(frozen=True)
class Bundle:
    header: Header
    # {"campaign": {column: value}, "jobs": [{"row": {...}, "result": {...} | None}],
    #  "workers": [{column: value}]}: JSON values, as farm.app.ports.BundleStore gives them.
    payload: dict[str, Any]


def encode(
    payload: dict[str, Any], *, bundle_id: str, farm: str, created: str
) -> tuple[Header, bytes]:
    """The header and the file's bytes for this payload."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    jobs = payload["jobs"]
    header = Header(
        id=bundle_id, schema=SCHEMA, farm=farm, created=created,
        sha256=hashlib.sha256(body).hexdigest(), campaign=payload["campaign"]["name"],
        jobs=len(jobs), results=sum(1 for j in jobs if j.get("result") is not None),
    )  # fmt: skip
    line = json.dumps(header.to_json(), separators=(",", ":")).encode()
    return header, gzip.compress(line + b"\n" + body, compresslevel=6, mtime=0)


def write_bundle(path: Path, data: bytes) -> None:
    """Whole or not at all: written beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"cannot write bundle {path}: {exc.strerror or exc}") from None


def check_writable(path: Path) -> None:
    """Before a run that ends by writing the bundle: its folder exists and takes files."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise BundleError(f"--bundle {path} is a folder; name a file, e.g. {path}/run.farm")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise BundleError(f"--bundle {path}: cannot write in {folder}; name a file in a "
                          "folder that exists and is writable")  # fmt: skip


def read_bundle(path: Path) -> Bundle:
    """The bundle in `path`, checked; one line saying what is wrong otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"no bundle at {path}: no such file") from None
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror or exc}") from None
    return decode(raw, str(path))


def decode(raw: bytes, name: str) -> Bundle:
    if not raw:
        raise BundleError(f"{name} is empty: not a Farm bundle (copy it again?)")
    if not raw.startswith(GZIP_MAGIC[: len(raw)]):
        raise BundleError(f"{name} is not a Farm bundle (not gzip data); `farm run --bundle "
                          "FILE` or `farm bundle CAMPAIGN FILE` makes one")  # fmt: skip
    data = _gunzip(raw, name)
    line, _, body = data.partition(b"\n")
    header = _header(line, name)
    digest = hashlib.sha256(body).hexdigest()
    if digest != header.sha256:
        raise BundleError(f"{name} fails its checksum (payload sha256 {digest[:12]}…, header "
                          f"says {header.sha256[:12]}…): it was altered or damaged on the way; "
                          "copy it again from the host that made it")  # fmt: skip
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise BundleError(f"{name} has a payload that is not JSON ({exc})") from None
    check_payload(payload, name)
    if payload["campaign"].get("bundle_id") != header.id:
        raise BundleError(f"{name} is malformed: its header's id is not its campaign's")
    return Bundle(header, payload)


def _gunzip(raw: bytes, name: str) -> bytes:
    try:
        if len(raw) < GZIP_HEADER:
            raise EOFError  # the magic number and no more: cut inside the gzip header
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(MAX_PAYLOAD + 1)
    except EOFError:
        raise BundleError(f"{name} is truncated (the compressed data ends early): copy it "
                          "again from the host that made it") from None  # fmt: skip
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise BundleError(f"{name} is damaged ({exc}): copy it again from the host that "
                          "made it") from None  # fmt: skip
    if len(data) > MAX_PAYLOAD:
        raise BundleError(f"{name} unpacks to more than {MAX_PAYLOAD >> 30} GiB: refused")
    return data


def _header(line: bytes, name: str) -> Header:
    try:
        fields = json.loads(line)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise BundleError(f"{name} is not a Farm bundle (no farm-bundle header); `farm run "
                          "--bundle FILE` or `farm bundle CAMPAIGN FILE` makes one")  # fmt: skip
    schema = fields.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise BundleError(f"{name} has a bad bundle schema {schema!r} in its header")
    if schema > SCHEMA:
        made_by = fields.get("farm", "?")
        raise BundleError(f"{name} was made by a newer Farm ({made_by}): bundle schema "
                          f"{schema}, this Farm reads up to {SCHEMA}; upgrade Farm")  # fmt: skip
    try:
        return Header(
            id=_text(fields, "id"), schema=schema, farm=_text(fields, "farm"),
            created=_text(fields, "created"), sha256=_text(fields, "sha256"),
            campaign=_text(fields, "campaign"), jobs=int(fields["jobs"]),
            results=int(fields["results"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{name} has a malformed header ({exc})") from None


def _text(fields: dict[str, Any], key: str) -> str:
    value = fields[key]
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{key} is {value!r}")
    return value


def check_payload(payload: Any, name: str) -> None:
    """The payload's shape; the rows' columns are checked by the store that loads them."""

    def bad(what: str) -> BundleError:
        return BundleError(f"{name} is malformed: {what}")

    if not isinstance(payload, dict):
        raise bad("the payload is not an object")
    campaign, jobs, workers = payload.get("campaign"), payload.get("jobs"), payload.get("workers")
    if not isinstance(campaign, dict) or not isinstance(campaign.get("name"), str):
        raise bad("no campaign with a name")
    if not isinstance(jobs, list) or not jobs:
        raise bad("no jobs")
    for i, job in enumerate(jobs):
        if not isinstance(job, dict) or not isinstance(job.get("row"), dict):
            raise bad(f"job {i} has no row")
        if job.get("result") is not None and not isinstance(job["result"], dict):
            raise bad(f"job {i} has a result that is not an object")
    if not isinstance(workers, list) or not all(isinstance(w, dict) for w in workers):
        raise bad("workers is not a list of objects")
