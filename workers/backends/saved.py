"""The resolved model saved to a temporary directory, for the backends whose loaders take
a path (OpenVINO's exporter, optimum-intel's `from_pretrained`), whatever its source was."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from farm.workers.models import LoadedModel


@contextmanager
def saved(loaded: LoadedModel, prefix: str) -> Iterator[str]:
    """A directory holding `loaded`'s model and tokenizer, removed when the block ends (the
    loader has read what it needs by then)."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        loaded.model.save_pretrained(workdir)
        loaded.tokenizer.save_pretrained(workdir)
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
