"""Credentials and transport: passwords never printed, Redis with a password and over TLS.

The private Redis servers are started by the tests on free loopback ports and stopped
afterwards; the machine's shared Redis and PostgreSQL are never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.harness import (
    REPO,
    WorkerProcess,
    count_rows,
    farm,
    farm_env,
    job_states,
    wait_for,
    write_matrix,
)

pytestmark = pytest.mark.acceptance

# Characters that need escaping in a URL, so both spellings are checked for leaks.
PASSWORD = "s3cret-p@ss:w/rd-7f3a"
ESCAPED = quote(PASSWORD, safe="")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    port: int
    password: str
    tls: Path | None  # the CA certificate when serving TLS

    def url(self, password: str | None = None, scheme: str = "redis", query: str = "") -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"{scheme}://:{secret}@127.0.0.1:{self.port}/0{query}"

    def client(self) -> object:
        import redis

        extra = {"ssl": True, "ssl_ca_certs": str(self.tls)} if self.tls else {}
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **extra)


def _start_redis(tmp: Path, *tls_args: str) -> Iterator[PrivateRedis]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    ports = ["--port", "0", "--tls-port", str(port)] if tls_args else ["--port", str(port)]
    log = (tmp / f"redis-{port}.log").open("w")
    proc = subprocess.Popen(
        [
            server,
            *ports,
            "--bind",
            "127.0.0.1",
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
            *tls_args,
        ],  # fmt: skip
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ca = tmp / "ca.crt" if tls_args else None
    instance = PrivateRedis(port, PASSWORD, ca)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            try:
                return bool(instance.client().ping())  # type: ignore[attr-defined]
            except Exception:
                return False

        wait_for(ready, 15, 0.1)
        if proc.poll() is not None:
            text = (tmp / f"redis-{port}.log").read_text()
            if tls_args and "tls" in text.lower():
                pytest.skip(f"this redis-server has no TLS support: {text.strip()[-200:]}")
            raise RuntimeError(f"redis-server exited: {text}")
        yield instance
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """redis-server with requirepass on a free loopback port, no persistence."""
    yield from _start_redis(tmp_path)


def _certificates(tmp: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=farm-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (tmp / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.cnf")  # fmt: skip


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """redis-server serving only TLS (self-signed CA), with a password."""
    _certificates(tmp_path)
    yield from _start_redis(
        tmp_path,
        "--tls-cert-file", str(tmp_path / "server.crt"),
        "--tls-key-file", str(tmp_path / "server.key"),
        "--tls-ca-cert-file", str(tmp_path / "ca.crt"),
        "--tls-auth-clients", "no",
    )  # fmt: skip


def _no_secret(*outputs: str) -> None:
    for out in outputs:
        assert PASSWORD not in out and ESCAPED not in out, out


def _one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    _no_secret(result.stdout, result.stderr)
    return lines[0]



def waiting(client: Any, queue: str) -> int:
    """Messages waiting in `queue`: kombu keeps a list per priority step (`queue`,
    `queue\x06\x163`, ...), and a normal campaign's go to the second."""
    return sum(int(client.llen(key)) for key in client.keys(f"{queue}*"))

def test_ruff_security_rules_are_enabled_and_clean() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    selected = set(config["tool"]["ruff"]["lint"]["select"])
    assert {"S602", "S603", "S604", "S605", "S301", "S506"} <= selected
    ruff = shutil.which("ruff", path=str(Path(REPO / ".venv" / "bin"))) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    rules = "S602,S603,S604,S605,S301,S506"
    result = subprocess.run(
        [ruff, "check", "--no-cache", "--select", rules, "farm", "workers", "cli"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_submit_through_a_password_protected_redis(
    private_redis: PrivateRedis, migrated_pg: str, tmp_path: Path
) -> None:
    matrix = write_matrix(tmp_path / "m.yaml", pools=["secured"])
    ok = farm("submit", str(matrix), env=farm_env(migrated_pg, private_redis.url()))
    assert ok.returncode == 0, ok.stderr
    _no_secret(ok.stdout, ok.stderr)
    assert waiting(private_redis.client(), "farm.secured") == 2  # type: ignore[attr-defined]

    for wrong, why in ((f"not-{PASSWORD}", "invalid username-password pair"), ("", "")):
        url = private_redis.url(wrong) if wrong else f"redis://127.0.0.1:{private_redis.port}/0"
        bad = farm("submit", str(matrix), env=farm_env(migrated_pg, url))
        line = _one_error(bad)
        masked = "redis://:***@" if wrong else "redis://127.0.0.1"
        assert f"broker {masked}" in line and "is unreachable" in line and why in line
        assert f"not-{ESCAPED}" not in line
    assert count_rows(migrated_pg, "campaign") == 1  # only the good submit wrote anything


def test_a_worker_behind_a_password_logs_no_password(
    private_redis: PrivateRedis, migrated_pg: str, tmp_path: Path
) -> None:
    env = farm_env(migrated_pg, private_redis.url())
    worker = WorkerProcess("secured", "w-secured", env, tmp_path / "worker.log")
    try:
        matrix = write_matrix(tmp_path / "m.yaml", pools=["secured"], batch_sizes=[1])
        sub = farm("submit", str(matrix), env=env)
        assert sub.returncode == 0, sub.stderr
        campaign = int(sub.stdout.strip().splitlines()[-1])
        wait_for(
            lambda: {s for _, s, _ in job_states(migrated_pg, campaign).values()} == {"succeeded"},
            120,
        )
    finally:
        worker.stop()
    log = worker.log.read_text()
    _no_secret(log)
    assert f"redis://:**@127.0.0.1:{private_redis.port}/0" in log  # Celery's own masking


DEAD_PG = f"postgresql+psycopg://farm:{ESCAPED}@127.0.0.1:1/farm"
DEAD_REDIS = f"redis://:{ESCAPED}@127.0.0.1:1/0"
BAD_DATABASE_URLS = [
    f"postgresql+nosuchdriver://farm:{ESCAPED}@127.0.0.1/farm",
    f"postgresql+psycopg://farm:{ESCAPED}@127.0.0.1:notaport/farm",
    f"farm:{PASSWORD}@127.0.0.1/farm",  # the scheme forgotten
    f"postgresql+psycopg://farm:{PASSWORD}@127.0.0.1:1/farm",  # unescaped / and @
    f"postgresql+psycopg://farm@127.0.0.1:1/farm?password={ESCAPED}",
]
COMMANDS = [
    ["submit", "MATRIX"],
    ["run", "MATRIX"],
    ["status"],
    ["campaigns"],
    ["hosts"],
    ["report", "1"],
    ["cancel", "1"],
    ["retry", "1"],
    ["rerun", "1", "--pool", "b"],
    ["delete", "1", "--yes"],
    ["db", "upgrade"],
    ["worker", "--pool", "a"],
]


def _args(command: list[str], tmp: Path) -> list[str]:
    matrix = write_matrix(tmp / "m.yaml")
    return [str(matrix) if a == "MATRIX" else a for a in command]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_no_command_prints_the_database_password(command: list[str], tmp_path: Path) -> None:
    line = _one_error(farm(*_args(command, tmp_path), env=farm_env(DEAD_PG, DEAD_REDIS)))
    assert "postgresql+psycopg://farm:***@127.0.0.1:1/farm" in line


@pytest.mark.parametrize("url", BAD_DATABASE_URLS)
def test_a_mistyped_database_url_does_not_print_its_password(url: str, tmp_path: Path) -> None:
    _one_error(farm("status", env=farm_env(url)))
    _one_error(farm(*_args(["submit", "MATRIX"], tmp_path), env=farm_env(url, DEAD_REDIS)))


@pytest.mark.parametrize("command", [["submit", "MATRIX"], ["worker", "--pool", "a"]])
def test_no_command_prints_the_broker_password(
    command: list[str], migrated_pg: str, tmp_path: Path
) -> None:
    for url in (DEAD_REDIS, f"redis://127.0.0.1:1/0?password={ESCAPED}", f"redis:/:{ESCAPED}@h"):
        line = _one_error(farm(*_args(command, tmp_path), env=farm_env(migrated_pg, url)))
        assert "broker " in line and "is unreachable" in line


def test_submit_over_tls(tls_redis: PrivateRedis, migrated_pg: str, tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path / "m.yaml", pools=["tls"])
    ca = tls_redis.tls
    verified = tls_redis.url(scheme="rediss", query=f"?ssl_cert_reqs=required&ssl_ca_certs={ca}")
    ok = farm("submit", str(matrix), env=farm_env(migrated_pg, verified))
    assert ok.returncode == 0, ok.stderr
    _no_secret(ok.stdout, ok.stderr)
    assert waiting(tls_redis.client(), "farm.tls") == 2  # type: ignore[attr-defined]

    # Without the CA the self-signed certificate is refused; plain Redis gets nowhere.
    unverified = tls_redis.url(scheme="rediss", query="?ssl_cert_reqs=required")
    line = _one_error(farm("submit", str(matrix), env=farm_env(migrated_pg, unverified)))
    assert "certificate verify failed" in line and "rediss://:***@" in line
    plain = tls_redis.url()
    line = _one_error(farm("submit", str(matrix), env=farm_env(migrated_pg, plain)))
    assert "redis://:***@" in line and "is unreachable" in line
    assert count_rows(migrated_pg, "campaign") == 1
