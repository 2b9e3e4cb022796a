"""Hostile matrices in the core: each is refused quickly with a MatrixError, never a traceback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from farm.errors import MatrixError
from farm.matrix import MAX_INPUT_CHARS, load_matrix, parse_matrix
from farm.modelpaths import looks_like_path, outside_roots
from farm.settings import Settings, hf_cache_dir, model_roots

BASE = """\
name: t
models: [distilbert-base-uncased]
inputs: {short: "hello"}
batch_sizes: [1]
backends: [pytorch]
pools: [icelake]
"""


def error_of(tmp_path: Path, text: str, **kwargs: object) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MatrixError) as info:
        load_matrix(path, **kwargs).expand()  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (BASE.replace("[1]", "[" + "1" * 5000 + "]"), "4300 digits"),
        (BASE + "when: 2001-13-01\n", "month must be in 1..12"),
        (BASE + "x: !!int 'abc'\n", "invalid literal for int()"),
        (BASE + "x: !!float 'abc'\n", "could not convert string to float"),
        (BASE.replace("[icelake]", "[" * 50_000 + "]" * 50_000), "nested deeper than 64"),
        (BASE.replace("[icelake]", "{a: " * 5000 + "1" + "}" * 5000), "nested deeper than 64"),
        (BASE + "? [a, b]\n: 1\n", "unhashable key"),
        (BASE + "? {a: 1}\n: 1\n", "unhashable key"),
    ],
    ids=[
        "huge-int",
        "bad-date",
        "int-tag",
        "float-tag",
        "deep-list",
        "deep-map",
        "list-key",
        "map-key",
    ],
)
def test_yaml_constructor_failures_are_matrix_errors(
    tmp_path: Path, text: str, mentions: str
) -> None:
    message = error_of(tmp_path, text)
    assert "malformed YAML" in message and mentions in message


def test_device_and_fifo_are_refused_without_reading(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(MatrixError, match="not a regular file"):
        load_matrix("/dev/zero")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(MatrixError, match="not a regular file"):
        load_matrix(fifo)  # would block forever waiting for a writer
    assert time.monotonic() - start < 5


def test_an_input_over_the_character_limit_is_refused(tmp_path: Path) -> None:
    long = "word " * (MAX_INPUT_CHARS // 5 + 1)
    message = error_of(tmp_path, BASE.replace('"hello"', f'"{long}"'))
    assert "inputs.short" in message and str(MAX_INPUT_CHARS) in message and "512 tokens" in message
    ok = BASE.replace('"hello"', '"' + "x" * MAX_INPUT_CHARS + '"')
    (tmp_path / "ok.yaml").write_text(ok)
    assert len(load_matrix(tmp_path / "ok.yaml").expand()) == 1


def _matrix(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "t",
        "models": ["m"],
        "inputs": {"s": "x"},
        "batch_sizes": [1],
        "backends": ["pytorch"],
        "pools": ["p"],
    }
    data.update(fields)
    return data


@pytest.mark.parametrize(
    "fields",
    [
        # 960,000 cells of which 3 are distinct: expanded naively, 20 s of JobSpecs.
        {
            "models": ["m"] * 100,
            "batch_sizes": [1] * 32,
            "pools": ["p"] * 100,
            "inputs": {f"i{k}": "x" for k in range(3)},
        },
        # 960,000 cells, 29 of 30 pools excluded: 32,000 jobs left, over the limit.
        {
            "models": [f"m{k}" for k in range(10)],
            "batch_sizes": list(range(1, 33)),
            "pools": [f"p{k}" for k in range(30)],
            "inputs": {f"i{k}": "x" for k in range(100)},
            "exclude": [{"pool": f"p{k}"} for k in range(29)],
        },
    ],
    ids=["repeats", "excludes"],
)
def test_expansion_bombs_are_counted_before_building(fields: dict[str, object]) -> None:
    matrix = parse_matrix(_matrix(**fields))
    start = time.monotonic()
    try:
        jobs = matrix.expand()
    except MatrixError as exc:
        assert "expands to 32000 jobs" in str(exc) and "more than 10000 jobs" in str(exc)
    else:
        assert len(jobs) == 3
    assert time.monotonic() - start < 2


def test_too_many_excludes_are_refused() -> None:
    with pytest.raises(MatrixError, match="exclude: List should have at most 1000 items"):
        parse_matrix(_matrix(exclude=[{"pool": "p"}] * 1001))


@pytest.mark.parametrize(
    ("name", "is_path"),
    [
        ("/etc", True),
        ("./models/x", True),
        ("~/.ssh", True),
        ("../x", True),
        ("org/../../etc", True),
        ("org/name", False),
        ("distilbert-base-uncased", False),
        ("org/name..v2", False),
    ],
)
def test_what_looks_like_a_path(name: str, is_path: bool) -> None:
    assert looks_like_path(name) is is_path


def test_model_paths_must_stay_under_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "mine").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    roots = [root]
    assert not outside_roots(str(root / "mine"), roots)
    assert not outside_roots("org/name", roots)  # a hub name, resolved by the worker
    assert outside_roots("/etc", roots)
    assert outside_roots(str(root / "mine" / ".." / ".." / "x"), roots)
    assert outside_roots(str(root / "escape"), roots)  # symlinks are followed
    message = error_of(
        tmp_path, BASE.replace("[distilbert-base-uncased]", "[/etc]"), model_roots=roots
    )
    assert "models.0.name: '/etc' is outside the allowed model roots" in message
    assert "FARM_MODEL_ROOTS" in message
    inside = BASE.replace("[distilbert-base-uncased]", f"[{root / 'mine'}]")
    (tmp_path / "in.yaml").write_text(inside)
    assert load_matrix(tmp_path / "in.yaml", model_roots=roots).models[0].name == str(root / "mine")


def test_model_roots_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"FARM_MODEL_ROOTS": "/srv/models:rel:", "HF_HOME": "/hf"}
    assert model_roots(env) == (Path("/srv/models"), tmp_path / "rel")
    assert model_roots({"HF_HOME": "/hf"}) == (tmp_path, Path("/hf/hub"))
    assert hf_cache_dir({"HF_HUB_CACHE": "/c", "HF_HOME": "/hf"}) == Path("/c")
    assert hf_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/huggingface/hub")
    assert Settings.from_env(env).model_roots == (Path("/srv/models"), tmp_path / "rel")
    # The environment is read when no roots are passed: the default refuses /etc.
    monkeypatch.setenv("FARM_MODEL_ROOTS", str(tmp_path))
    message = error_of(tmp_path, BASE.replace("[distilbert-base-uncased]", "[/etc]"))
    assert "outside the allowed model roots" in message
