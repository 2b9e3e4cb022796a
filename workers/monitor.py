"""`farm flower`: Celery's Flower web monitor on Farm's broker, with Farm's Celery app.

Flower gets the same app as the workers (farm.workers.app.create_app), so it speaks JSON
only, as they do, and finds their queues and tasks; it prints the broker with its password
masked. Flower asks the workers to send task events while it runs.
"""

from __future__ import annotations

from farm.errors import FarmError
from farm.settings import Settings
from farm.workers.app import check_broker, create_app

INSTALL_HINT = "pip install 'flower>=2,<3' (in the worker profile: scripts/install.sh VENV worker)"


def run_flower(settings: Settings, port: int, address: str, extra: list[str]) -> int:
    """Serve Flower on address:port until SIGTERM or Ctrl-C; `extra` are Flower's own options
    (e.g. --url_prefix=flower); its FLOWER_* environment variables apply too."""
    try:
        import flower  # noqa: F401
    except ImportError:
        raise FarmError(f"Flower is not installed: {INSTALL_HINT}") from None
    app = create_app(settings)
    check_broker(app, settings.broker_url)
    code = app.start(["flower", f"--port={port}", f"--address={address}", *extra])
    return int(code or 0)
