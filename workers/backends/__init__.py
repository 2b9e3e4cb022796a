"""Backend registry: name → implementation, imported lazily so heavy imports stay inside."""

from __future__ import annotations

import importlib

from farm.errors import BackendUnavailable
from workers.backends.base import Backend

_IMPLEMENTATIONS = {
    "pytorch": "workers.backends.pytorch:PytorchBackend",
    "selftest": "workers.backends.selftest:SelftestBackend",
}


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
