"""Backend loading: the table's implementation paths (farm/backends.py), imported lazily so
heavy imports stay inside the backend that needs them."""

from __future__ import annotations

import importlib
import importlib.util
from importlib import metadata

from farm.backends import BACKENDS
from farm.errors import BackendUnavailable
from farm.workers.backends.base import Backend

_IMPLEMENTATIONS = {name: b.implementation for name, b in BACKENDS.items()}


def get_backend(name: str) -> Backend:
    target = _IMPLEMENTATIONS.get(name)
    if target is None:
        raise BackendUnavailable(
            f"unknown backend {name!r}; known: {', '.join(sorted(_IMPLEMENTATIONS))}"
        )
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend {name!r} cannot load here: {exc}; install the worker stack "
            "(`scripts/install.sh .venv worker`)"
        ) from None
    backend: Backend = getattr(module, cls_name)()
    return backend


def available_backends() -> dict[str, str | None]:
    """Every registered backend → None when it can run in this environment, else why not.

    Cheap: backend modules keep their heavy imports inside functions, requirements are
    looked up with `importlib.util.find_spec` (nothing is imported but parent packages of
    dotted names) and versions with `importlib.metadata`; torch is not imported.
    """
    return {name: _unavailable(name) for name in sorted(_IMPLEMENTATIONS)}


def _unavailable(name: str) -> str | None:
    module_name, _, cls_name = _IMPLEMENTATIONS[name].partition(":")
    try:
        cls: type[Backend] = getattr(importlib.import_module(module_name), cls_name)
    except ImportError as exc:
        return f"its module does not import: {exc}"
    hint = cls.install_hint or "install the worker stack (`scripts/install.sh .venv worker`)"
    missing = [m for m in cls.requires if not _importable(m)]
    if missing:
        return f"{', '.join(missing)} not importable here; {hint}"
    # Distribution → version prefix it must have (IPEX refuses any torch but its own).
    wanted: dict[str, str] = getattr(cls, "requires_versions", {})
    for dist, prefix in wanted.items():
        try:
            found: str | None = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found = None
        if found is None or not found.startswith(prefix):
            return f"needs {dist} {prefix}x, found {found or 'none'}; {hint}"
    probe = getattr(cls, "probe", None)  # anything else it needs, e.g. a C++ compiler
    return probe() if probe is not None else None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a broken one
        return False
