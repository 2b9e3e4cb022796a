"""Who may reach `farm serve` at an address: no web framework here, so `farm` (and every
worker, whose stack has no dashboard packages) can list the command without importing one."""

from __future__ import annotations

import ipaddress

TOKEN_ENV = "FARM_SERVE_TOKEN"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere
