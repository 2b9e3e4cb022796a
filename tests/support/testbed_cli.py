"""`scripts/testbed.sh`: bring a multi-host bed (tests/support/testbed.py) up and down by
hand, run commands in its hosts, cut and heal links, and remove what crashed runs left."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from tests.support.testbed import PREFIX, Host, Testbed, remove_bed, sh


def load(bed_id: str) -> Testbed:
    """A bed made by another process, from the state it saved."""
    state = json.loads((Path(tempfile.gettempdir()) / f"{PREFIX}-{bed_id}" / "state.json")
                       .read_text())  # fmt: skip
    bed = Testbed(tuple(state["pools"]), state["per_pool"], bed_id, state["subnet"])
    bed.hosts = {h["name"]: Host(**h) for h in state["hosts"]}
    return bed


def bed_ids() -> list[str]:
    """Beds on this machine: their folders and namespaces (a crash may leave either)."""
    dirs = {p.name.split("-")[1] for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}-*")}
    names = sh("ip", "netns", "list", check=False).split()
    spaces = {n.split("-")[1] for n in names if n.startswith(f"{PREFIX}-") and n.count("-") == 2}
    links = sh("ip", "-o", "link", "show", "type", "bridge", check=False)
    bridges = {w[len(PREFIX) :].rstrip(":") for w in links.split() if w.startswith(PREFIX)}
    return sorted(i for i in dirs | spaces | bridges if len(i) == 6)


def owner_alive(bed_id: str) -> bool:
    state = Path(tempfile.gettempdir()) / f"{PREFIX}-{bed_id}" / "state.json"
    try:
        owner = int(json.loads(state.read_text()).get("owner") or 0)
    except (OSError, ValueError):
        return False
    return owner > 0 and Path(f"/proc/{owner}").exists()


def main(argv: list[str]) -> int:
    """up [--workers] | down ID... | down --all | exec ID HOST CMD... | partition|heal ID HOST"""
    if not argv or argv[0] not in ("up", "down", "exec", "partition", "heal", "cut", "list"):
        print(main.__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "list":
        for i in bed_ids():
            print(i, "in use" if owner_alive(i) else "left over (or by hand)")
    elif cmd == "up":
        bed = Testbed().up()
        import atexit

        atexit.unregister(bed.down)  # by hand: it stays until `down ID`
        if "--workers" in rest:
            bed.start_all()
        bed._save(owner=0)
        print(f"bed {bed.id}: subnet {bed.subnet}.0/24, logs in {bed.dir}/logs")
        print(f"export FARM_DATABASE_URL={bed.database_url} FARM_BROKER_URL={bed.broker_url}")
        for h in bed.hosts.values():
            print(f"  {h.name}: pool {h.pool}, {h.addr}, cpu {h.cpus}, netns {h.ns}")
        print(f"scripts/testbed.sh exec {bed.id} a1 farm worker --pool a   # a worker by hand")
        print(f"scripts/testbed.sh down {bed.id}")
    elif cmd == "down":
        ids = [i for i in bed_ids() if not owner_alive(i)] if "--all" in rest else rest
        for i in ids:
            remove_bed(i)
            print(f"removed bed {i}")
    elif cmd == "exec":
        bed = load(rest[0])
        host = bed.hosts[rest[1]]
        os.environ.update(bed.env(host))
        args = bed.in_host(host, rest[3:] if rest[2:3] == ["--"] else rest[2:])
        os.execvp(args[0], args)
    else:
        bed = load(rest[0])
        if cmd == "partition":
            bed.partition(rest[1], link="--link" in rest)
        elif cmd == "cut":
            bed.cut(rest[1], rest[2])
        else:
            bed.heal(rest[1], rest[2] if len(rest) > 2 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
