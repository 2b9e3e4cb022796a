"""available_backends(): cheap (no torch import), complete, and says where a backend runs.
Unmarked, so it runs in the dev venv (and in a stack when no -m is given)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from farm.backends import OPTION_SCHEMAS

REPO = Path(__file__).resolve().parents[2]


# Put first on sys.meta_path, this finder makes the named top-level packages unfindable, as
# in an environment that lacks them, whatever this one has installed.
HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HIDDEN:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


def probe(hidden: tuple[str, ...] = ()) -> dict[str, object]:
    code = (
        f"HIDDEN = {set(hidden)!r}\n{HIDE}\n"
        "import json, sys; from farm.workers.backends import available_backends; "
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


def test_unavailable_backends_name_what_is_missing_and_the_stack_that_has_them() -> None:
    """With OpenVINO and IPEX hidden, as on a host of neither stack, each backend that needs
    one says which package is missing and which stack to build; the others stay available."""
    found = probe(hidden=("openvino", "intel_extension_for_pytorch"))["found"]
    assert isinstance(found, dict)
    expected = {
        "openvino": ("openvino", "stacks/build.sh main"),
        "ipex": ("intel_extension_for_pytorch", "stacks/build.sh ipex"),
        "optimum-ipex": ("intel_extension_for_pytorch", "stacks/build.sh ipex"),
    }
    for name, (missing, build) in expected.items():
        reason = found[name]
        assert isinstance(reason, str), (name, reason)
        assert reason.startswith(f"{missing} not importable here") or missing in reason, reason
        assert build in reason, reason
    assert found["selftest"] is None


def test_a_missing_torch_makes_every_model_backend_unavailable_with_the_install_hint() -> None:
    found = probe(hidden=("torch",))["found"]
    assert isinstance(found, dict)
    assert found["selftest"] is None
    for name in set(found) - {"selftest"}:
        reason = found[name]
        assert isinstance(reason, str) and "torch" in reason, (name, reason)
    assert "scripts/install.sh .venv worker" in str(found["pytorch"])
