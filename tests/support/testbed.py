"""A bed of many hosts on one machine: Linux network namespaces joined by a bridge.

Each worker "host" is a network namespace with its own address and, through a UTS
namespace, its own hostname; a "services" namespace runs a private redis-server and a
private PostgreSQL cluster on two addresses of its own, so a fault can cut one and not the
other. The root namespace (where tests and a person run `farm`) reaches them over the
bridge. Names carry a random id and the /24 is one not in use, so two beds on one machine
do not collide; every bed keeps its state in /tmp/ftb-ID, so `down --all` finds what a
crashed run left. Faults are silent drops (iptables in the namespaces): a partition looks
like a real one, no error comes back. Root only.

    scripts/testbed.sh up [--workers]     # by hand: tests/support/testbed_cli.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.support.harness import FARM, farm_env, wait_for

PREFIX = "ftb"
PG_BIN = Path(os.environ.get("FARM_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_PORT, PG_PORT = 6379, 5432
# Short leases and beats, so that drills take seconds (the lead's periodic recovery reads them).
WORKER_ENV = {"FARM_LEASE_TTL": "6", "FARM_WORKER_HEARTBEAT": "1", "FARM_WORKER_TTL": "30",
              "FARM_RESULT_RETRY": "2", "FARM_MAX_ATTEMPTS": "3"}  # fmt: skip


def sh(*args: str, check: bool = True, timeout: float = 30) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def missing() -> str | None:
    """Why no bed can be made here (None when one can)."""
    if os.geteuid() != 0:
        return "not root (network namespaces need CAP_NET_ADMIN)"
    for tool in ("ip", "iptables", "unshare", "runuser", "faketime", "redis-server"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y iproute2 iptables faketime)"
    if not (PG_BIN / "postgres").exists():
        return f"no PostgreSQL server in {PG_BIN} (FARM_TEST_PG_BIN)"
    probe = f"{PREFIX}-probe{os.getpid()}"
    try:
        sh("ip", "netns", "add", probe)
        sh("ip", "netns", "exec", probe, "iptables", "-S")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return f"ip netns / iptables unavailable: {exc}"
    finally:
        sh("ip", "netns", "del", probe, check=False)
    return None


def free_subnet() -> str:
    """A 10.x.y prefix that no address or route on this machine uses."""
    used = sh("ip", "-4", "-o", "addr") + sh("ip", "-4", "route")
    for _ in range(100):
        prefix = f"10.{random.randint(64, 254)}.{random.randint(0, 255)}"
        if f" {prefix}." not in used and f"\n{prefix}." not in f"\n{used}":
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 found")


@dataclass
class Host:
    name: str  # its hostname, and its namespace's suffix
    pool: str
    ns: str
    addr: str
    root_veth: str
    cpus: str


class BedWorker:
    """A real `farm worker` in a host's namespace, under its hostname (and maybe a skewed
    clock): a session of its own, so SIGSTOP/SIGCONT/SIGKILL reach its pool child too."""

    def __init__(self, bed: Testbed, host: Host, env: dict[str, str], skew: str | None) -> None:
        self.host, self.skew, self.log = host, skew, bed.dir / "logs" / f"{host.name}.log"
        args = [FARM, "-v", "worker", "--pool", host.pool, "--cpus", host.cpus, "--threads", "1"]
        with self.log.open("a") as fh:
            fh.write(f"--- started{' with clock ' + skew if skew else ''} ---\n")
            fh.flush()
            self.start = fh.tell()  # a restart appends: its "ready" is after this
            self.proc = subprocess.Popen(
                bed.in_host(host, args, skew), env=env, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: "ready" in self.text() or self.proc.poll() is not None, 90, 0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker on {host.name} exited:\n{self.text()[-3000:]}")

    def text(self) -> str:
        """This run's log (since its start)."""
        return self.log.read_text(errors="replace")[self.start :]

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.signal(signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


class Testbed:
    """One bed: `up()` makes it, `down()` removes every namespace, link, process and file
    it made (also registered with atexit; `down --all` removes those of dead runs)."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, pools: tuple[str, ...] = ("a", "b", "c"), per_pool: int = 2,
                 bed_id: str | None = None, subnet: str | None = None) -> None:  # fmt: skip
        self.id = bed_id or os.urandom(3).hex()
        self.pools, self.per_pool = pools, per_pool
        self.dir = Path(tempfile.gettempdir()) / f"{PREFIX}-{self.id}"
        self.subnet = subnet or ""
        self.bridge = f"{PREFIX}{self.id}"
        self.svc_ns = f"{PREFIX}-{self.id}-svc"
        ncpu = len(os.sched_getaffinity(0))
        names = [f"{p}{i}" for p in pools for i in range(1, per_pool + 1)]
        self.hosts = {n: Host(n, n[:-1], f"{PREFIX}-{self.id}-{n}", "", f"{self.bridge}r{k}",
                              str(sorted(os.sched_getaffinity(0))[k % ncpu]))
                      for k, n in enumerate(names)}  # fmt: skip
        self.workers: dict[str, BedWorker] = {}
        self.procs: list[subprocess.Popen[bytes]] = []

    # --- addresses and URLs ----------------------------------------------------------------

    @property
    def redis_addr(self) -> str:
        return f"{self.subnet}.1"

    @property
    def pg_addr(self) -> str:
        return f"{self.subnet}.2"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.pg_addr}:{PG_PORT}/farm"

    @property
    def broker_url(self) -> str:
        return f"redis://{self.redis_addr}:{REDIS_PORT}/0"

    def env(self, host: Host | None = None, **extra: str) -> dict[str, str]:
        """`farm`'s environment in the root namespace, or a worker host's (own spool)."""
        env = {**farm_env(self.database_url, self.broker_url), **WORKER_ENV}
        if host is not None:
            env["FARM_SPOOL_DIR"] = str(self.spool(host))
        return {**env, **extra}

    def spool(self, host: Host) -> Path:
        return self.dir / "spool" / host.name

    # --- up and down -----------------------------------------------------------------------

    def up(self, migrate: bool = True) -> Testbed:
        import atexit

        self.subnet = self.subnet or free_subnet()
        for sub in ("logs", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self._save(owner=os.getpid())
        atexit.register(self.down)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        self._namespace(self.svc_ns, f"{self.bridge}s", [self.redis_addr, self.pg_addr])
        for k, host in enumerate(self.hosts.values()):
            host.addr = f"{self.subnet}.{11 + k}"
            self._namespace(host.ns, host.root_veth, [host.addr], host.name)
        self._save(owner=os.getpid())
        self._start_redis()
        self._start_postgres()
        if migrate:
            out = subprocess.run([FARM, "db", "upgrade"], env=self.env(), capture_output=True,
                                 text=True, timeout=120, check=False)  # fmt: skip
            if out.returncode != 0:
                raise RuntimeError(f"farm db upgrade failed: {out.stderr}")
        return self

    def _namespace(self, ns: str, root_veth: str, addrs: list[str], name: str = "svc") -> None:
        inner = f"{root_veth}x"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", root_veth, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "link", "set", root_veth, "master", self.bridge, "up")
        for addr in addrs:
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
        sh("ip", "-n", ns, "link", "set", inner, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        etc = Path("/etc/netns") / ns  # `ip netns exec` mounts these over /etc/hosts, resolv.conf
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{addrs[0]} {name}\n")
        (etc / "resolv.conf").write_text("# no DNS in the bed\n")

    def _daemon(self, args: list[str], log: str) -> None:
        with (self.dir / "logs" / log).open("a") as fh:
            self.procs.append(subprocess.Popen(["ip", "netns", "exec", self.svc_ns, *args],
                                               stdout=fh, stderr=subprocess.STDOUT,
                                               start_new_session=True))  # fmt: skip

    def _start_redis(self) -> None:
        self._daemon(["redis-server", "--bind", self.redis_addr, "--port", str(REDIS_PORT),
                      "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                     "redis.log")  # fmt: skip
        self._until_listening(self.redis_addr, REDIS_PORT, "redis.log")

    def _start_postgres(self) -> None:
        data = self.dir / "pg"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
        sh(*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
           "--no-sync", timeout=120)  # fmt: skip
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.subnet}.0/24 trust\n")
        self._daemon([*as_pg, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(PG_PORT),
                      "-c", f"listen_addresses={self.pg_addr}",
                      "-c", f"unix_socket_directories={data}", "-c", "fsync=off",
                      "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                     "postgres.log")  # fmt: skip
        self._until_listening(self.pg_addr, PG_PORT, "postgres.log")
        admin = self.database_url.rsplit("/", 1)[0] + "/postgres"
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import OperationalError

        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        try:
            for attempt in range(150):  # bounded: 30 s while the server starts
                try:
                    with engine.connect() as conn:
                        conn.execute(text("CREATE DATABASE farm"))
                    break
                except OperationalError:
                    if attempt == 149:
                        raise
                    time.sleep(0.2)
        finally:
            engine.dispose()

    def _until_listening(self, addr: str, port: int, log: str) -> None:
        import socket

        def up() -> bool:
            try:
                socket.create_connection((addr, port), timeout=1).close()
                return True
            except OSError:
                return False

        try:
            wait_for(up, 30, 0.1)
        except TimeoutError:
            raise RuntimeError((self.dir / "logs" / log).read_text()[-2000:]) from None

    def down(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        remove_bed(self.id)
        for proc in self.procs:  # reap what remove_bed killed
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()

    def _save(self, owner: int) -> None:
        state = {"id": self.id, "subnet": self.subnet, "pools": list(self.pools),
                 "per_pool": self.per_pool, "owner": owner,
                 "hosts": [asdict(h) for h in self.hosts.values()]}  # fmt: skip
        (self.dir / "state.json").write_text(json.dumps(state, indent=1))

    # --- processes in hosts ----------------------------------------------------------------

    def in_host(self, host: Host, args: list[str], skew: str | None = None) -> list[str]:
        """`args` run in the host's namespace under its hostname; `skew` ('+300', '-300')
        runs it under libfaketime with its clock that many seconds off."""
        inner = ["faketime", "-f", skew, *args] if skew else args
        return ["ip", "netns", "exec", host.ns, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', host.name, *inner]  # fmt: skip

    def run(self, host: Host, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One `farm` command from inside a host."""
        return subprocess.run(
            self.in_host(host, [FARM, *args]), env=self.env(host), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def start_worker(self, name: str, skew: str | None = None, **extra: str) -> BedWorker:
        host = self.hosts[name]
        old = self.workers.pop(name, None)
        if old is not None:
            old.stop()
        self.workers[name] = worker = BedWorker(self, host, self.env(host, **extra), skew)
        return worker

    def start_all(self) -> None:
        for name in self.hosts:
            self.start_worker(name)

    def reset(self) -> None:
        """Between drills: every fault healed, every host with a running, true-clock worker."""
        for ns in [self.svc_ns, *(h.ns for h in self.hosts.values())]:
            sh("ip", "netns", "exec", ns, "iptables", "-F", "INPUT")
        for name in self.hosts:
            worker = self.workers.get(name)
            if worker is not None:
                worker.signal(signal.SIGCONT)
            if worker is None or worker.skew or worker.proc.poll() is not None:
                self.start_worker(name)

    # --- faults: silent drops, both ways -------------------------------------------------

    def _rules(self, host: Host, action: str, only: str | None) -> None:
        inner = f"{host.root_veth}x"
        if only is None:  # the whole host: nothing in, nothing of it reaches the services
            pairs = [(host.ns, ["-i", inner]), (self.svc_ns, ["-s", host.addr])]
        else:
            pairs = [(host.ns, ["-s", only]), (self.svc_ns, ["-s", host.addr, "-d", only])]
        for ns, match in pairs:
            rule = ["ip", "netns", "exec", ns, "iptables", action, "INPUT", *match, "-j", "DROP"]
            sh(*rule, check=action == "-I")

    def partition(self, name: str, link: bool = False) -> None:
        """Cut the host off the bed: its packets and those to it are dropped, no error;
        `link` sets its cable's bridge end down instead (ARP then fails after a while)."""
        if link:
            sh("ip", "link", "set", self.hosts[name].root_veth, "down")
        else:
            self._rules(self.hosts[name], "-I", None)

    def cut(self, name: str, service: str) -> None:
        """Cut only the database ('db') or only the broker ('redis') from one host."""
        self._rules(self.hosts[name], "-I", self._service(service))

    def heal(self, name: str, service: str | None = None) -> None:
        """Undo partition() (service None) or cut(); a rule not there is no error."""
        host = self.hosts[name]
        self._rules(host, "-D", None if service is None else self._service(service))
        if service is None:
            sh("ip", "link", "set", host.root_veth, "up")

    def dialing(self, name: str, service: str) -> bool:
        """Is a process of this host opening a new connection to the service (SYN sent)?
        Seen while it is cut: it gave up a stale connection and tries again by itself."""
        host, addr = self.hosts[name], self._service(service)
        out = sh("ip", "netns", "exec", host.ns, "ss", "-Htn", "state", "syn-sent", "dst", addr)
        return bool(out.strip())

    def _service(self, service: str) -> str:
        return {"db": self.pg_addr, "redis": self.redis_addr}[service]


def remove_bed(bed_id: str) -> None:
    """Kill every process in the bed's namespaces, then delete them, the links and files."""
    mine = f"{PREFIX}-{bed_id}-"
    spaces = [n for n in sh("ip", "netns", "list", check=False).split() if n.startswith(mine)]
    spaces.sort(key=lambda n: n.endswith("-svc"))  # the hosts first: their FINs reach the services
    for ns in spaces:
        for _ in range(50):  # bounded: 50 rounds of SIGKILL, 0.1 s apart
            pids = [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
    for etc in Path("/etc/netns").glob(f"{mine}*"):
        shutil.rmtree(etc, ignore_errors=True)
    # A namespace lingers (nameless) while its closed sockets time out: delete the links
    # themselves, the bridge last.
    links = [w.split("@")[0] for w in sh("ip", "-o", "link", check=False).split()
             if w.startswith(f"{PREFIX}{bed_id}")]  # fmt: skip
    for link in sorted(links, key=len, reverse=True):
        sh("ip", "link", "del", link.rstrip(":"), check=False)
    shutil.rmtree(Path(tempfile.gettempdir()) / f"{PREFIX}-{bed_id}", ignore_errors=True)
