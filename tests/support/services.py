"""The services a test run owns: a private redis-server and throw-away PostgreSQL databases.

Every run starts its own Redis on a free loopback port and creates its own databases, so two
runs on one machine (two checkouts, or CI beside a developer) never flush or read each
other's queues and tables.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get(
    "FARM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def unavailable(service: str, reason: object) -> NoReturn:
    """Skip with the reason locally; fail under CI=true, where every service must be up."""
    message = f"{service} is not reachable ({reason}); start it to run this test"
    if IN_CI:
        pytest.fail(f"{message} -- CI must provide it")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    binary = os.environ.get("FARM_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", "not installed; the tests start private ones")
    return binary


class RedisServer:
    """A private, memory-only redis-server on a free loopback port; SIGKILL and restart."""

    def __init__(self, binary: str, log: Path) -> None:
        self.binary, self.log = binary, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start()

    @property
    def url(self) -> str:
        return self.database(0)

    def database(self, index: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{index}"

    def start(self) -> None:
        import redis

        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        with self.log.open("a") as fh:
            self.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
        self.starts += 1
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server did not start:\n{self.log.read_text()}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: nothing is saved, every message in it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def flush(self) -> None:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=2)
        try:
            client.flushall()
        finally:
            client.close()

    def client_count(self) -> int:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            return len(client.client_list()) - 1  # not counting this one
        finally:
            client.close()


@contextmanager
def postgres_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh, empty PostgreSQL database of a unique name, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from farm.db.session import get_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        conn = admin.connect()
    except OperationalError as exc:
        admin.dispose()
        unavailable("PostgreSQL", str(exc.orig).splitlines()[0])
    name = f"farm_test_{uuid.uuid4().hex[:12]}"
    conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.close()
        admin.dispose()


@contextmanager
def private_postgres() -> Iterator[str]:
    """A PostgreSQL server of this run's own (initdb in a fresh /tmp folder, a free loopback
    port, the defaults: max_connections 100), stopped and removed afterwards; yields its
    admin URL. For a load that would crowd a shared server's connections. As root, the
    server runs as the `postgres` user (PostgreSQL refuses root)."""
    bindir = os.environ.get("FARM_TEST_PG_BINDIR") or _pg_bindir()
    tmp, port = Path(tempfile.mkdtemp(prefix="farm-pg-")), free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(tmp, "postgres")

    def pg(*args: str) -> None:
        done = subprocess.run([*as_pg, *args], capture_output=True, text=True, timeout=120)  # noqa: S603
        if done.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-2000:]}")

    data = tmp / "data"
    try:
        pg(f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        pg(f"{bindir}/pg_ctl", "-D", str(data), "-l", str(tmp / "postgres.log"), "-w", "-o",
           f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1", "start")  # fmt: skip
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            pg(f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pg_bindir() -> str:
    initdb = shutil.which("initdb")
    if initdb is None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            unavailable("initdb", "not installed (FARM_TEST_PG_BINDIR names its folder)")
        initdb = str(found[-1])
    return str(Path(initdb).resolve().parent)
