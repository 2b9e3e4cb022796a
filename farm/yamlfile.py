"""Reading a YAML file a user hands Farm: bounded in size and depth, keys never repeated.

The safe loader only; every failure is one MatrixError naming the file and, where known,
the line and column, so a malformed file is refused before anything is written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from farm.errors import MatrixError

MAX_MATRIX_BYTES = 1 << 20
MAX_YAML_DEPTH = 64


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice (PyYAML silently keeps the last) and
    nesting deeper than MAX_YAML_DEPTH (the composer recurses: `[[[[...` would overflow)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_YAML_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str) and key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (line {mark.line + 1})", mark
                )
            if isinstance(key, str):  # other keys: the base class refuses unhashable ones
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_bounded(p: Path) -> bytes:
    """At most MAX_MATRIX_BYTES + 1 bytes of a regular file (/dev/zero or a FIFO would hang)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; no effect on regular files.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise MatrixError(f"cannot read matrix file {str(p)!r}: not a regular file")
            return fh.read(MAX_MATRIX_BYTES + 1)
    except OSError as exc:
        raise MatrixError(f"cannot read matrix file {str(p)!r}: {exc.strerror}") from None


def read_yaml(p: Path) -> Any:
    """The parsed document of file `p` (at most MAX_MATRIX_BYTES of UTF-8 YAML)."""
    raw = _read_bounded(p)
    if len(raw) > MAX_MATRIX_BYTES:
        raise MatrixError(f"{p}: matrix file is over {MAX_MATRIX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatrixError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MatrixError(f"{p}: malformed YAML{at}: {problem}") from None
    except (ValueError, RecursionError) as exc:  # a constructor's int(), date(), float()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = reason.split("; use sys.set_int_max_str_digits")[0][:200]  # Python's own hint
        raise MatrixError(f"{p}: malformed YAML: {reason}") from None
    return data
