"""Hostile and mistaken input to `farm submit`, table-driven.

Every case runs the real CLI against the real PostgreSQL and Redis and must end with one
clear line on stderr (no traceback), a non-zero exit, no row in the database and no
message in the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.matrix import MAX_INPUT_CHARS
from tests.support.harness import SHORT, count_rows, farm, farm_env

pytestmark = pytest.mark.acceptance

BASE: dict[str, Any] = {
    "name": "hostile",
    "models": [{"name": "distilbert-base-uncased", "layers": 1}],
    "inputs": {"short": SHORT},
    "batch_sizes": [1],
    "backends": ["pytorch"],
    "pools": ["hx"],  # pools of this file start with hx: other suites share the Redis db
    "protocol": {"warmup": 1, "iterations": 5},
}
BASE_YAML = yaml.safe_dump(BASE, sort_keys=False)


def _matrix(**overrides: Any) -> str:
    return yaml.safe_dump({**BASE, **overrides}, sort_keys=False)


def _bomb(use: str) -> str:
    """Billion-laughs anchors over lists (9**9 leaves if walked), used as `use`."""
    lines = ["x-anchors:", "  a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    for level in range(1, 9):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    rest = yaml.safe_dump({k: v for k, v in BASE.items() if k != use}, sort_keys=False)
    return "\n".join(lines) + "\n" + rest + f"{use}: *a8\n"


@dataclass
class Case:
    id: str
    mentions: str  # a piece of the one error line
    text: str | bytes | None = None  # the matrix file's content
    args: list[str] = field(default_factory=list)  # extra submit arguments
    path: Callable[[Path], Path] | None = None  # a path other than a written file


def _dir(tmp: Path) -> Path:
    (tmp / "adir").mkdir()
    return tmp / "adir"


CASES = [
    Case("malformed-yaml", "malformed YAML at line", "name: x\nmodels: [a, b\npools: [a]\n"),
    Case("tab-indent", "malformed YAML", "name: x\nmodels:\n\t- a\n"),
    Case("alias-bomb-models", "invalid matrix", _bomb("models")),
    Case("alias-bomb-inputs", "invalid matrix", _bomb("inputs")),
    Case("alias-bomb-pools", "invalid matrix", _bomb("pools")),
    Case(
        "python-object-apply",
        "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply",
        'name: !!python/object/apply:os.system ["touch MARKER"]\n',
    ),
    Case(
        "python-object-new",
        "python/object/new",
        "name: x\ninputs: {a: !!python/object/new:subprocess.Popen [[touch, MARKER]]}\n",
    ),
    Case("python-name", "python/name", "name: !!python/name:os.system\n"),
    Case(
        "over-max-jobs",
        "expands to 12 jobs",
        _matrix(batch_sizes=[1, 2, 3, 4], pools=["hx1", "hx2", "hx3"]),
        ["--max-jobs", "10"],
    ),
    Case(
        "product-bomb",
        "has 32000000 cells before excludes",
        _matrix(
            models=[f"m{i}" for i in range(100)],
            inputs={f"i{i}": "x" for i in range(100)},
            batch_sizes=list(range(1, 33)),
            pools=[f"hx{i}" for i in range(100)],
        ),
    ),
    Case(
        "exclude-bomb",
        "expands to 32000 jobs",
        _matrix(
            models=[f"m{i}" for i in range(10)],
            inputs={f"i{i}": "x" for i in range(100)},
            batch_sizes=list(range(1, 33)),
            pools=[f"hx{i}" for i in range(30)],
            exclude=[{"pool": f"hx{i}"} for i in range(29)],
        ),
    ),
    Case("batch-size-string", "batch_sizes.0", _matrix(batch_sizes=["one"])),
    Case("models-not-a-list", "models: Input should be a valid list", _matrix(models=42)),
    Case("batch-size-bool", "batch_sizes.0", _matrix(batch_sizes=[True])),
    Case(
        "batch-size-zero",
        "batch_sizes.0: Input should be greater than or equal to 1",
        _matrix(batch_sizes=[0]),
    ),
    Case("batch-size-negative", "batch_sizes.0", _matrix(batch_sizes=[-8])),
    Case(
        "batch-size-huge",
        "batch_sizes.0: Input should be less than or equal to 1024",
        _matrix(batch_sizes=[10**9]),
    ),
    Case(
        "layers-zero",
        "models.0.layers",
        _matrix(models=[{"name": "bert-base-uncased", "layers": 0}]),
    ),
    Case("unknown-backend", "unknown backend 'tensorflow'", _matrix(backends=["tensorflow"])),
    Case(
        "unknown-backend-option",
        "option fast: Extra inputs are not permitted",
        _matrix(backends=[{"name": "pytorch", "options": {"fast": True}}]),
    ),
    Case(
        "trust-remote-code-in-backend-options",
        "option trust_remote_code: Extra inputs are not permitted",
        _matrix(backends=[{"name": "pytorch", "options": {"trust_remote_code": True}}]),
    ),
    Case(
        "bad-dtype",
        "backends.0",
        _matrix(backends=[{"name": "pytorch", "options": {"dtype": "int4"}}]),
    ),
    Case("pool-shell-chars", "pools.0: only letters, digits", _matrix(pools=["a;rm -rf /"])),
    Case("pool-space", "pools.0: only letters, digits", _matrix(pools=["ice lake"])),
    Case("pool-unicode", "pools.0: only letters, digits", _matrix(pools=["zen\u2074"])),
    Case("name-sql", "name: only letters, digits", _matrix(name="x'; DROP TABLE job; --")),
    Case("name-shell", "name: only letters, digits", _matrix(name="$(touch MARKER)")),
    Case("name-too-long", "name: only letters, digits", _matrix(name="n" * 101)),
    Case(
        "model-absolute-path", "'/etc' is outside the allowed model roots", _matrix(models=["/etc"])
    ),
    Case("model-dotdot", "is outside the allowed model roots", _matrix(models=["../../../../etc"])),
    Case(
        "model-hidden-dotdot",
        "is outside the allowed model roots",
        _matrix(models=["org/../../../etc"]),
    ),
    Case("model-home", "'~/.ssh' is outside the allowed model roots", _matrix(models=["~/.ssh"])),
    Case("model-https", "not a URL", _matrix(models=["https://evil.example/model"])),
    Case("model-file-url", "not a URL", _matrix(models=["file:///etc/passwd"])),
    Case("model-control-char", "control characters", _matrix(models=["bert\x1b[2Jbase"])),
    Case("iterations-absurd", "protocol.iterations", _matrix(protocol={"iterations": 10**12})),
    Case("warmup-negative", "protocol.warmup", _matrix(protocol={"warmup": -1})),
    Case("duration-absurd", "protocol.min_duration_s", _matrix(protocol={"min_duration_s": 10**9})),
    Case("iterations-cli", "Invalid value for '--iterations'", BASE_YAML, ["--iterations", "0"]),
    Case("max-jobs-cli", "Invalid value for '--max-jobs'", BASE_YAML, ["--max-jobs", "-5"]),
    Case("unknown-profile", "unknown protocol profile 'forever'", _matrix(protocol="forever")),
    Case(
        "unknown-task", "task: Input should be 'text-classification'", _matrix(task="summarization")
    ),
    Case("unknown-allocator", "allocators.0", _matrix(allocators=["mimalloc"])),
    Case("non-utf8", "not UTF-8 text", BASE_YAML.replace(SHORT, "caf\xe9").encode("latin-1")),
    Case(
        "100k-token-input",
        f"over the limit of {MAX_INPUT_CHARS}",
        _matrix(inputs={"long": "word " * 100_000}),
    ),
    Case("empty-file", "expected a mapping at the top level", ""),
    Case("only-a-comment", "expected a mapping at the top level", "# nothing\n"),
    Case("yaml-list", "expected a mapping at the top level", "- name: x\n- models: [m]\n"),
    Case("directory", "is a directory", path=_dir),
    Case("missing-file", "No such file or directory", path=lambda tmp: tmp / "nope.yaml"),
    Case("dev-zero", "not a regular file", path=lambda _: Path("/dev/zero")),
    Case("over-1-mib", "matrix file is over 1048576 bytes", BASE_YAML + "#" + "x" * (1 << 20)),
    Case("duplicate-keys", "key 'pools' appears twice", BASE_YAML + "pools: [b]\n"),
    Case("unknown-top-level-key", "extra: Extra inputs are not permitted", _matrix(extra=1)),
    Case("exclude-matches-nothing", "exclude.0 matches no cell", _matrix(exclude=[{"pool": "zz"}])),
    Case(
        "exclude-everything", "no jobs left after its excludes", _matrix(exclude=[{"pool": "hx"}])
    ),
    Case(
        "deep-nesting",
        "nested deeper than 64 levels",
        BASE_YAML + "x: " + "[" * 10_000 + "]" * 10_000 + "\n",
    ),
    Case(
        "huge-integer",
        "4300 digits",
        BASE_YAML.replace("iterations: 5", "iterations: " + "9" * 5000),
    ),
    Case("impossible-date", "month must be in 1..12", BASE_YAML + "when: 2024-13-45\n"),
    Case("unhashable-key", "found unhashable key", BASE_YAML + "? [a, b]\n: 1\n"),
]


def test_the_table_is_large_and_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


def _run_case(case: Case, env: dict[str, str], tmp_path: Path) -> tuple[str, str, int, float]:
    marker = tmp_path / "MARKER"
    if case.path is not None:
        path = case.path(tmp_path)
    else:
        path = tmp_path / "matrix.yaml"
        content = case.text if case.text is not None else ""
        if isinstance(content, str):
            path.write_text(content.replace("MARKER", str(marker)), encoding="utf-8")
        else:
            path.write_bytes(content)
    start = time.monotonic()
    result = farm("submit", str(path), *case.args, env=env, timeout=60)
    assert not marker.exists(), "a YAML tag ran code"
    return result.stdout, result.stderr, result.returncode, time.monotonic() - start


def _one_line(stderr: str) -> str:
    """The error line; Click's usage lines around a usage error do not count."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(("Usage:", "Try '"))]
    assert len(meaningful) == 1, stderr
    return meaningful[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_matrix_is_refused(
    case: Case, migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    import redis

    env = farm_env(migrated_pg, redis_url)
    env["FARM_MODEL_ROOTS"] = str(tmp_path / "models")
    stdout, stderr, code, elapsed = _run_case(case, env, tmp_path)
    assert code != 0
    assert "Traceback" not in stderr + stdout
    line = _one_line(stderr)
    assert line.startswith("Error: ") and case.mentions in line, line
    assert len(line) < 700
    assert stdout == ""  # no campaign id
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert count_rows(migrated_pg, "campaign") == 0
    assert count_rows(migrated_pg, "job") == 0
    assert redis.Redis.from_url(redis_url).keys("*farm.hx*") == []  # nothing enqueued


def test_trust_remote_code_on_a_model_is_kept_and_paths_under_a_root_pass(
    migrated_pg: str, redis_url: str, tmp_path: Path
) -> None:
    """The allowed counterparts: trust_remote_code on a model entry is stored in the job
    (so a report can show it), and a model directory under FARM_MODEL_ROOTS is accepted."""
    from sqlalchemy import create_engine, text

    local = tmp_path / "models" / "mine"
    local.mkdir(parents=True)
    env = farm_env(migrated_pg, redis_url)
    env["FARM_MODEL_ROOTS"] = str(tmp_path / "models")
    path = tmp_path / "ok.yaml"
    path.write_text(
        _matrix(
            pools=["hx-nobody"],
            models=[
                {"name": "distilbert-base-uncased", "layers": 1, "trust_remote_code": True},
                str(local),
            ],
        )
    )
    result = farm("submit", str(path), env=env)
    assert result.returncode == 0, result.stderr
    campaign = int(result.stdout.strip().splitlines()[-1])
    engine = create_engine(migrated_pg)
    try:
        with engine.connect() as conn:
            specs = [
                row[0]
                for row in conn.execute(
                    text("SELECT spec FROM job WHERE campaign_id = :c ORDER BY id"),
                    {"c": campaign},
                )
            ]
    finally:
        engine.dispose()
    assert [s["model"]["trust_remote_code"] for s in specs] == [True, False]
    assert specs[1]["model"]["name"] == str(local)
