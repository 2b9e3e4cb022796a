"""The bundle file's rules, without a database: what a reader accepts and what it refuses,
with one line that says why (farm.app.bundlefile)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from farm.app.bundlefile import (
    SCHEMA,
    BundleError,
    check_writable,
    encode,
    read_bundle,
    write_bundle,
)
from tests.support.bundles import edited, split, tampered, truncated

ID = "6f1c3c1e-0000-4000-8000-000000000001"


def payload() -> dict[str, Any]:
    return {
        "campaign": {"name": "offline", "matrix": {"pools": ["spr"]}, "bundle_id": ID},
        "jobs": [
            {
                "row": {"state": "succeeded", "pool": "spr"},
                "result": {"mean_ms": 12.5, "samples": "AAEC", "host": "sprbox"},
            },
            {"row": {"state": "failed", "pool": "spr"}, "result": None},
        ],  # fmt: skip
        "workers": [{"name": "embedded@sprbox", "fingerprint": {"cpu": "x"}}],
    }


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    header, data = encode(payload(), bundle_id=ID, farm="0.1.0", created="2026-12-01T10:00:00")
    assert (header.jobs, header.results, header.campaign) == (2, 1, "offline")
    path = tmp_path / "run.farm"
    write_bundle(path, data)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(BundleError) as caught:
        read_bundle(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_bundle_reads_back_as_written(bundle: Path) -> None:
    read = read_bundle(bundle)
    assert read.payload == payload()
    assert (read.header.id, read.header.schema, read.header.farm) == (ID, SCHEMA, "0.1.0")
    header, _ = split(bundle)
    assert header["format"] == "farm-bundle" and len(header["sha256"]) == 64


def test_the_same_payload_gives_the_same_bytes() -> None:
    """No time stamp in the gzip stream: a bundle is a function of what it carries."""
    one = encode(payload(), bundle_id=ID, farm="0.1.0", created="t")[1]
    assert one == encode(payload(), bundle_id=ID, farm="0.1.0", created="t")[1]


@pytest.mark.parametrize("keep", [1, 2, 9, 40, 0.5, -9, -1])
def test_a_truncated_bundle_is_refused(bundle: Path, tmp_path: Path, keep: float) -> None:
    """Cut anywhere: in the gzip header, the data, the trailer's checksum or its length."""
    raw = bundle.read_bytes()
    (tmp_path / "cut.farm").write_bytes(raw[: int(len(raw) * keep) if 0 < keep < 1 else keep])
    assert 0 < (tmp_path / "cut.farm").stat().st_size < len(raw)
    assert "is truncated" in refusal(tmp_path / "cut.farm")


def test_a_bundle_cut_to_nothing_is_refused(bundle: Path, tmp_path: Path) -> None:
    empty = truncated(bundle, tmp_path / "empty.farm", 0)
    assert "is empty" in refusal(empty)


def test_a_changed_payload_byte_fails_the_checksum(bundle: Path, tmp_path: Path) -> None:
    bad = tampered(bundle, tmp_path / "bad.farm")
    assert split(bad)[0] == split(bundle)[0]  # the header as it was
    assert "fails its checksum" in refusal(bad)


def test_a_changed_compressed_byte_is_refused(bundle: Path, tmp_path: Path) -> None:
    raw = bytearray(bundle.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "flip.farm").write_bytes(bytes(raw))
    message = refusal(tmp_path / "flip.farm")
    assert "damaged" in message or "fails its checksum" in message


def test_a_newer_schema_is_refused_by_name(bundle: Path, tmp_path: Path) -> None:
    newer = edited(bundle, tmp_path / "new.farm", header_edit=lambda h: h.update(schema=2))
    message = refusal(newer)
    assert message.endswith(
        "was made by a newer Farm (0.1.0): bundle schema 2, this Farm reads up to 1; upgrade Farm"
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"name: quick\nmodels: []\n", "not a Farm bundle (not gzip data)"),
        (gzip.compress(b"hello\nworld"), "not a Farm bundle (no farm-bundle header)"),
        (gzip.compress(b'{"format": "other"}\n{}'), "not a Farm bundle (no farm-bundle header)"),
    ],
)
def test_a_file_that_is_not_a_bundle_is_refused(tmp_path: Path, content: bytes, says: str) -> None:
    (tmp_path / "x.farm").write_bytes(content)
    assert says in refusal(tmp_path / "x.farm")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path / "nope.farm") == f"no bundle at {tmp_path / 'nope.farm'}: no such file"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda p: p.update(jobs=[]), "no jobs"),
        (lambda p: p["campaign"].pop("name"), "no campaign with a name"),
        (lambda p: p["jobs"][0].update(result=[1]), "a result that is not an object"),
        (lambda p: p["campaign"].update(bundle_id="another"), "header's id is not its campaign's"),
    ],
)
def test_a_malformed_payload_is_refused(bundle: Path, tmp_path: Path, edit: Any, says: str) -> None:
    bad = edited(bundle, tmp_path / "bad.farm", payload_edit=edit)
    message = refusal(bad)
    assert "is malformed" in message and says in message


def test_a_bundle_path_must_be_a_file_in_a_folder_that_exists(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is a folder"):
        check_writable(tmp_path)
    with pytest.raises(BundleError, match="cannot write in"):
        check_writable(tmp_path / "no" / "such" / "run.farm")
    with pytest.raises(BundleError, match="cannot write bundle"):
        write_bundle(tmp_path / "no" / "run.farm", b"x")
    check_writable(tmp_path / "run.farm")
    write_bundle(tmp_path / "run.farm", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["run.farm"]  # no temporary file left
