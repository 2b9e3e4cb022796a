"""available_backends(): cheap (no torch import), complete, and says where a backend runs.
Unmarked, so it runs in the dev venv (and in a stack when no -m is given)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from farm.backends import OPTION_SCHEMAS

REPO = Path(__file__).resolve().parents[2]


def probe() -> dict[str, object]:
    code = (
        "import json, sys; from workers.backends import available_backends; "
        "print(json.dumps({'found': available_backends(), "
        "'heavy': sorted(m for m in ('torch', 'transformers', 'openvino', "
        "'intel_extension_for_pytorch') if m in sys.modules)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_probe_imports_no_heavy_library_and_covers_every_schema() -> None:
    result = probe()
    assert result["heavy"] == []
    found = result["found"]
    assert isinstance(found, dict)
    assert set(found) == set(OPTION_SCHEMAS)  # every backend with a schema is registered
    for name, reason in found.items():
        assert reason is None or isinstance(reason, str) and reason, name


def test_unavailable_backends_name_the_stack_that_has_them() -> None:
    found = probe()["found"]
    assert isinstance(found, dict)
    stack_of = {"openvino": "main", "ipex": "ipex", "optimum-ipex": "ipex"}
    for name, stack in stack_of.items():
        if found[name] is not None:
            assert isinstance(found[name], str)
            assert f"stacks/build.sh {stack}" in found[name] or "needs" in found[name]
