"""Model entries that are filesystem paths must stay under the allowed model roots.

A worker loads whatever directory a model entry names, and its files end up identified
in a report; a matrix from someone else must not point a worker at ~/.ssh or /etc. Hub
style names (`org/name`) stay allowed: the worker resolves them offline by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from farm.errors import MatrixError


def looks_like_path(name: str) -> bool:
    """A path rather than a hub name: starts with / . or ~, or climbs with a `..` part."""
    return name.startswith(("/", ".", "~")) or ".." in PurePosixPath(name).parts


def _resolve(path: Path) -> Path:
    path = path.expanduser()
    return (path if path.is_absolute() else Path.cwd() / path).resolve()


def outside_roots(name: str, roots: Sequence[Path]) -> bool:
    """True when `name` is a path that does not resolve (symlinks followed) under a root."""
    if not looks_like_path(name):
        return False
    try:
        target = _resolve(Path(name))
    except (OSError, RuntimeError):  # no home directory for ~, a symlink loop
        return True
    return not any(target.is_relative_to(_resolve(root)) for root in roots)


def check_model_paths(names: Iterable[str], roots: Sequence[Path], source: str) -> None:
    """Raise MatrixError naming the first model path outside the roots."""
    for i, name in enumerate(names):
        if outside_roots(name, roots):
            allowed = ":".join(str(r) for r in roots)
            raise MatrixError(
                f"{source}: invalid matrix: models.{i}.name: {name!r} is outside the allowed "
                f"model roots ({allowed}); move the model under one of them or set "
                "FARM_MODEL_ROOTS"
            )
