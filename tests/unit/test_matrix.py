"""farm.matrix: the YAML matrix is validated in full, then expanded deterministically."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from farm.errors import MatrixError
from farm.jobs import JobSpec
from farm.matrix import Matrix, load_matrix, parse_matrix
from tests.support.harness import LONG, SHORT

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed.yaml"
QUICK = ROOT / "examples" / "quick.yaml"


# A small valid matrix; tests replace single lines of it.
BASE = """\
name: t
models: [distilbert-base-uncased]
inputs: {short: "hello"}
batch_sizes: [1]
backends: [pytorch]
pools: [icelake]
"""


def write(tmp_path: Path, text: str, name: str = "matrix.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def variant(**lines: str) -> str:
    """BASE with whole top-level lines replaced: variant(pools="pools: [a, b]")."""
    out = []
    for line in BASE.splitlines():
        key = line.split(":", 1)[0]
        out.append(lines.pop(key, line))
    out.extend(lines.values())  # keys BASE lacks are appended
    return "\n".join(line for line in out if line) + "\n"


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MatrixError) as info:
        load_matrix(path).expand()
    return str(info.value)


# --- the example matrices -------------------------------------------------------------


def test_seed_expands_to_the_blogs_24_jobs() -> None:
    matrix = load_matrix(SEED)
    jobs = matrix.expand()
    assert len(jobs) == 24
    assert len({job.cell_key() for job in jobs}) == 24
    assert {job.model.name for job in jobs} == {
        "distilbert-base-uncased",
        "bert-base-uncased",
        "roberta-base",
    }
    assert len(matrix.models) == 3
    assert {job.batch_size for job in jobs} == {1, 8}
    assert {job.batching for job in jobs} == {"sequential"}
    assert {job.task for job in jobs} == {"text-classification"}


def test_seed_protocol_is_100_warmup_and_1000_iterations() -> None:
    jobs = load_matrix(SEED).expand()
    assert all(job.protocol.warmup == 100 for job in jobs)
    assert all(job.protocol.iterations == 1000 for job in jobs)


def test_seed_inputs_are_the_blogs_sentences_verbatim() -> None:
    matrix = load_matrix(SEED)
    assert matrix.inputs == {"short": SHORT, "long": LONG}
    assert matrix.inputs["short"] == (
        "This is a really nice pair of shoes, I am completely satisfied with my purchase"
    )
    texts = {job.input_name: job.input_text for job in matrix.expand()}
    assert texts == {"short": SHORT, "long": LONG}


def test_seed_runs_ipex_only_on_sapphire_rapids_and_pytorch_only_on_ice_lake() -> None:
    jobs = load_matrix(SEED).expand()
    pairs = {(job.backend, job.pool) for job in jobs}
    assert pairs == {("pytorch", "icelake"), ("ipex", "sapphirerapids")}
    for job in jobs:
        if job.backend == "ipex":
            assert job.backend_options == {"dtype": "bf16", "jit": True}
        else:
            assert job.backend_options == {"dtype": "fp32"}
    # Every (model, input, batch) is measured on both sides of the headline comparison.
    per_cell: dict[tuple[str, str, int], set[str]] = {}
    for job in jobs:
        per_cell.setdefault((job.model.name, job.input_name, job.batch_size), set()).add(job.pool)
    assert len(per_cell) == 12
    assert all(pools == {"icelake", "sapphirerapids"} for pools in per_cell.values())


def test_quick_expands_with_pytorch_only_on_two_pools() -> None:
    jobs = load_matrix(QUICK).expand()
    assert jobs
    assert {job.backend for job in jobs} == {"pytorch"}
    assert len({job.pool for job in jobs}) == 2
    assert len(jobs) == 1 * 2 * 2 * 1 * 2  # models x inputs x batch sizes x backends x pools


@pytest.mark.parametrize("path", [SEED, QUICK], ids=["seed", "quick"])
def test_jobs_sharing_a_runner_are_contiguous(path: Path) -> None:
    keys = [job.runner_key() for job in load_matrix(path).expand()]
    groups = [key for key, _ in itertools.groupby(keys)]
    assert len(groups) == len(set(groups)), "a runner key reappears after another one"


# --- expansion ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [SEED, QUICK], ids=["seed", "quick"])
def test_expansion_is_deterministic(path: Path) -> None:
    first = [job.cell_key() for job in load_matrix(path).expand()]
    second = [job.cell_key() for job in load_matrix(path).expand()]
    assert first == second
    assert len(first) == len(set(first))


def test_expansion_survives_a_json_round_trip() -> None:
    for job in load_matrix(SEED).expand():
        again = JobSpec.from_json(job.to_json())
        assert again == job
        assert again.cell_key() == job.cell_key()


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ({"models": "models: [distilbert-base-uncased, distilbert-base-uncased]"}, 1),
        ({"models": "models: [bert-base-uncased, {name: bert-base-uncased}]"}, 1),
        ({"pools": "pools: [icelake, zen4, icelake]"}, 2),
        ({"batch_sizes": "batch_sizes: [1, 8, 1, 8]"}, 2),
        ({"backends": "backends: [pytorch, {name: pytorch, options: {dtype: fp32}}]"}, 1),
        ({"backends": "backends: [pytorch, {name: pytorch, options: {dtype: bf16}}]"}, 2),
    ],
    ids=[
        "model-twice",
        "model-two-spellings",
        "pool-twice",
        "batch-twice",
        "backend-same",
        "backend-different-options",
    ],
)
def test_duplicate_cells_collapse(tmp_path: Path, lines: dict[str, str], expected: int) -> None:
    jobs = load_matrix(write(tmp_path, variant(**lines))).expand()
    keys = [job.cell_key() for job in jobs]
    assert len(keys) == len(set(keys))
    assert len(jobs) == expected


def test_excludes_remove_matching_cells(tmp_path: Path) -> None:
    text = variant(
        models="models: [m1, m2]",
        batch_sizes="batch_sizes: [1, 8]",
        pools="pools: [icelake, zen4]",
        exclude="exclude:\n  - {model: m1, pool: zen4}\n  - {batch_size: 8, pool: icelake}",
    )
    jobs = load_matrix(write(tmp_path, text)).expand()
    cells = {(job.model.name, job.batch_size, job.pool) for job in jobs}
    assert cells == {
        ("m1", 1, "icelake"),
        ("m2", 1, "icelake"),
        ("m2", 1, "zen4"),
        ("m2", 8, "zen4"),
    }


def test_exclude_by_input_and_backend(tmp_path: Path) -> None:
    text = variant(
        inputs='inputs: {short: "a", long: "b"}',
        backends="backends: [pytorch, ipex]",
        exclude="exclude:\n  - {input: long, backend: ipex}",
    )
    jobs = load_matrix(write(tmp_path, text)).expand()
    assert {(job.input_name, job.backend) for job in jobs} == {
        ("short", "pytorch"),
        ("short", "ipex"),
        ("long", "pytorch"),
    }


def test_an_empty_exclude_is_refused(tmp_path: Path) -> None:
    text = variant(pools="pools: [a, b]", exclude="exclude:\n  - {}")
    message = load_error(tmp_path, text)
    assert "exclude.0" in message and "at least one" in message


def test_an_exclude_matching_nothing_is_refused(tmp_path: Path) -> None:
    text = variant(pools="pools: [a, b]", exclude="exclude:\n  - {backend: ipx}")
    with pytest.raises(MatrixError, match=r"exclude\.0 matches no cell.*ipx"):
        load_matrix(write(tmp_path, text, "typo.yaml")).expand()


def test_max_jobs_counts_jobs_after_excludes() -> None:
    seed = load_matrix(ROOT / "examples" / "seed.yaml")
    assert len(seed.expand(max_jobs=24)) == 24
    with pytest.raises(MatrixError, match="more than 23 jobs"):
        seed.expand(max_jobs=23)


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = variant(pools="pools: [a]\npools: [b]")
    message = load_error(tmp_path, text)
    assert "'pools' appears twice" in message


def test_lax_coercion_is_refused(tmp_path: Path) -> None:
    assert "batch_sizes.0" in load_error(tmp_path, variant(batch_sizes="batch_sizes: [true]"))


def test_excludes_that_remove_everything_raise(tmp_path: Path) -> None:
    text = variant(exclude="exclude:\n  - {backend: pytorch}")
    message = load_error(tmp_path, text)
    assert "no jobs" in message


def test_protocol_defaults_apply_without_a_protocol_section(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, BASE))
    assert (matrix.protocol.warmup, matrix.protocol.iterations) == (100, 1000)


def test_protocol_overrides_apply(tmp_path: Path) -> None:
    path = write(tmp_path, variant(protocol="protocol: {warmup: 100, iterations: 1000}"))
    jobs = load_matrix(path, warmup=3, iterations=17).expand()
    assert {(job.protocol.warmup, job.protocol.iterations) for job in jobs} == {(3, 17)}


def test_protocol_override_without_a_protocol_section(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, BASE), iterations=5)
    assert (matrix.protocol.warmup, matrix.protocol.iterations) == (100, 5)


def test_protocol_override_of_zero_warmup_applies_and_none_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, variant(protocol="protocol: {warmup: 10, iterations: 20}"))
    matrix = load_matrix(path, warmup=0, iterations=None)
    assert (matrix.protocol.warmup, matrix.protocol.iterations) == (0, 20)


def test_protocol_override_is_validated(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match=r"protocol\.iterations"):
        load_matrix(write(tmp_path, BASE), iterations=0)


def test_product_over_the_limit_raises(tmp_path: Path) -> None:
    text = variant(
        models="models: [m1, m2]",
        batch_sizes="batch_sizes: [1, 8]",
        pools="pools: [p1, p2, p3]",
    )
    matrix = load_matrix(write(tmp_path, text))
    assert len(matrix.expand()) == 12
    assert len(matrix.expand(max_jobs=12)) == 12
    with pytest.raises(MatrixError) as info:
        matrix.expand(max_jobs=10)
    assert "12" in str(info.value)
    assert "10" in str(info.value)


def test_parse_matrix_accepts_a_dict() -> None:
    data = {
        "name": "d",
        "models": ["m"],
        "inputs": {"short": "x"},
        "batch_sizes": [1],
        "backends": ["pytorch"],
        "pools": ["p"],
    }
    matrix = parse_matrix(data)
    assert isinstance(matrix, Matrix)
    assert len(matrix.expand()) == 1


# --- errors -------------------------------------------------------------------------


def test_unknown_backend_lists_known_backends(tmp_path: Path) -> None:
    message = load_error(tmp_path, variant(backends="backends: [onnx]"))
    assert "backends.0" in message
    assert "onnx" in message
    assert "ipex" in message and "pytorch" in message


@pytest.mark.parametrize(
    ("backends", "mentions"),
    [
        ("backends: [{name: pytorch, options: {dtype: int8}}]", "dtype"),
        ("backends: [{name: ipex, options: {dtype: fp16}}]", "dtype"),
        ("backends: [{name: ipex, options: {jit: maybe}}]", "jit"),
        ("backends: [{name: pytorch, options: {jit: true}}]", "jit"),
        ("backends: [{name: pytorch, options: {threads: 4}}]", "threads"),
        ("backends: [{name: pytorch, flavour: x}]", "flavour"),
    ],
    ids=[
        "pytorch-dtype",
        "ipex-dtype",
        "ipex-jit",
        "pytorch-jit",
        "unknown-option",
        "unknown-entry-key",
    ],
)
def test_bad_backend_options(tmp_path: Path, backends: str, mentions: str) -> None:
    message = load_error(tmp_path, variant(backends=backends))
    assert "backends.0" in message
    assert mentions in message


@pytest.mark.parametrize(
    "pool",
    ['"ice lake"', '"ice;lake"', '"$(rm -rf)"', '""', '"icelake\\n"', '"a/b"'],
    ids=["space", "semicolon", "subshell", "empty", "newline", "slash"],
)
def test_bad_pool_names(tmp_path: Path, pool: str) -> None:
    message = load_error(tmp_path, variant(pools=f"pools: [icelake, {pool}]"))
    assert "pools.1" in message
    assert "only letters, digits" in message


def test_campaign_name_too_long(tmp_path: Path) -> None:
    message = load_error(tmp_path, variant(name="name: " + "a" * 101))
    assert message.count("name:") >= 1 and "only letters, digits" in message
    assert "100" in message
    # 100 characters is still fine
    matrix = load_matrix(write(tmp_path, variant(name="name: " + "a" * 100), "ok.yaml"))
    assert matrix.name == "a" * 100


@pytest.mark.parametrize("size", [0, -1, 1025])
def test_bad_batch_sizes(tmp_path: Path, size: int) -> None:
    message = load_error(tmp_path, variant(batch_sizes=f"batch_sizes: [1, {size}]"))
    assert "batch_sizes.1" in message


@pytest.mark.parametrize("iterations", [0, -5, 10**9])
def test_bad_iterations(tmp_path: Path, iterations: int) -> None:
    message = load_error(tmp_path, variant(protocol=f"protocol: {{iterations: {iterations}}}"))
    assert "protocol.iterations" in message


def test_negative_warmup(tmp_path: Path) -> None:
    message = load_error(tmp_path, variant(protocol="protocol: {warmup: -1}"))
    assert "protocol.warmup" in message


def test_missing_model_list(tmp_path: Path) -> None:
    text = "".join(line + "\n" for line in BASE.splitlines() if not line.startswith("models"))
    message = load_error(tmp_path, text)
    assert "models" in message
    assert "required" in message


@pytest.mark.parametrize(
    "field",
    ["models", "inputs", "batch_sizes", "backends", "pools"],
    ids=["model-list", "inputs", "batch_sizes", "backends", "pools"],
)
def test_empty_lists_are_refused(tmp_path: Path, field: str) -> None:
    empty = "{}" if field == "inputs" else "[]"
    message = load_error(tmp_path, variant(**{field: f"{field}: {empty}"}))
    assert field in message


def test_extra_top_level_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, variant(modles="modles: [bert-base-uncased]"))
    assert "modles" in message
    assert "not permitted" in message


def test_unknown_exclude_field(tmp_path: Path) -> None:
    message = load_error(tmp_path, variant(exclude="exclude:\n  - {dtype: bf16}"))
    assert "exclude.0.dtype" in message


def test_unknown_task(tmp_path: Path) -> None:
    message = load_error(tmp_path, variant(task="task: summarization"))
    assert "task" in message
    assert "text-classification" in message


@pytest.mark.parametrize(
    "model",
    [
        "http://example.com/model.bin",
        "https://huggingface.co/bert-base-uncased",
        "s3://bucket/model",
        '"bert\\x00base"',
    ],
    ids=["http", "https", "s3", "control-char"],
)
def test_model_urls_and_control_characters_are_refused(tmp_path: Path, model: str) -> None:
    message = load_error(tmp_path, variant(models=f"models: [{model}]"))
    assert "models.0.name" in message


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    text = "name: t\nmodels: [bert-base-uncased\npools: [a]\n"
    message = load_error(tmp_path, text)
    assert "malformed YAML" in message
    assert "line" in message


def test_malformed_yaml_line_number_is_one_based(tmp_path: Path) -> None:
    text = "name: t\nmodels: x\n  bad: indentation\n"
    message = load_error(tmp_path, text)
    assert "malformed YAML at line 3" in message


def test_python_tags_are_refused_without_side_effects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'name: !!python/object/apply:os.system ["touch {marker}"]\n' + BASE.split("\n", 1)[1]
    message = load_error(tmp_path, text)
    assert "malformed YAML" in message
    assert "python/object/apply" in message
    assert not marker.exists()


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("hello", "caf\xe9").encode("latin-1"))
    with pytest.raises(MatrixError, match="not UTF-8"):
        load_matrix(path)


@pytest.mark.parametrize(
    "text",
    ["- name: t\n- models: [m]\n", "just a string\n", "42\n", ""],
    ids=["list", "string", "number", "empty"],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    message = load_error(tmp_path, text)
    assert "mapping" in message


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(MatrixError, match="cannot read matrix file") as info:
        load_matrix(missing)
    assert "nope.yaml" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="cannot read matrix file"):
        load_matrix(tmp_path)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(MatrixError, match="over"):
        load_matrix(path)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Billion-laughs anchors over lists: width**levels leaves if expanded naively."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "placement",
    ["top-level", "unknown-key", "model-list", "backend-option", "pools", "exclude"],
)
def test_yaml_alias_bomb_fails_fast(tmp_path: Path, placement: str) -> None:
    bomb = _alias_bomb()
    last = "*a8"
    if placement == "top-level":
        text = bomb
    elif placement == "unknown-key":
        text = BASE + "bomb:\n" + "".join(f"  {line}\n" for line in bomb.splitlines())
    else:
        # Anchors defined under an extra key, used where the matrix accepts nested data.
        holder = "x-anchors:\n" + "".join(f"  {line}\n" for line in bomb.splitlines())
        use = {
            "model-list": {"models": f"models: {last}"},
            "backend-option": {
                "backends": f"backends: [{{name: pytorch, options: {{x: {last}}}}}]"
            },
            "pools": {"pools": f"pools: {last}"},
            "exclude": {"exclude": f"exclude: {last}"},
        }[placement]
        text = holder + variant(**use)
    # 9**9 leaves if anything walked the aliases naively: this would hang, not raise.
    with pytest.raises(MatrixError):
        load_matrix(write(tmp_path, text)).expand()
