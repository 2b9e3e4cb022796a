"""`farm serve` in tests: the server as a subprocess, headless Debian chromium (driven by
Playwright, no browser download), screenshots, and a check that an image is not blank."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.harness import FARM
from tests.support.services import free_port, unavailable

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def artifacts_dir() -> Path:
    """$FARM_TEST_ARTIFACTS, or a temporary folder when unset (printed by the tests)."""
    found = os.environ.get("FARM_TEST_ARTIFACTS")
    path = Path(found) if found else Path(tempfile.mkdtemp(prefix="farm-serve-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_binary() -> str:
    binary = os.environ.get("FARM_TEST_CHROMIUM") or shutil.which("chromium")
    if binary is None:
        unavailable("chromium", "not installed: apt-get install chromium")
    return binary


@contextmanager
def browser() -> Iterator[Any]:
    """Headless chromium reaching nothing but the test's servers."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable("playwright", exc)
    binary = chromium_binary()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class ServeProcess:
    """A real `farm serve` on a free port, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, env: dict[str, str], log: Path, host: str = "127.0.0.1",
                 token: str | None = None) -> None:  # fmt: skip
        self.port = free_port()
        self.log = log
        env = dict(env)
        env.pop("FARM_SERVE_TOKEN", None)
        if token is not None:
            env["FARM_SERVE_TOKEN"] = token
        self._fh = log.open("w")
        self.proc = subprocess.Popen(
            [FARM, "serve", "--host", host, "--port", str(self.port)],
            env=env, stdout=self._fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/static/style.css", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (401 behind a token)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"farm serve did not start:\n{log.read_text()}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()


def colours(png: bytes) -> int:
    """How many distinct colours a PNG screenshot has: 1 or 2 is a blank image."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    found = image.getcolors(maxcolors=1 << 20)
    return len(found) if found is not None else 1 << 20
