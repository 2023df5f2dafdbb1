"""A worker host of its own for partition tests: a network namespace joined to this one by a
veth pair, and a private PostgreSQL cluster listening on this side's veth address.

Use the ``partition`` fixture::

    def test_something(partition: Partition) -> None:
        partition.cluster.dsn               # from this namespace (127.0.0.1)
        partition.dsn_from_namespace        # from inside it (this side's veth address)
        subprocess.Popen(partition.exec_argv([sys.executable, ...]))  # a process inside it
        partition.cut()                     # a silent partition: every packet dropped
        partition.restore()

What it does:

- ``ip netns add``, a veth pair (one end moved into the namespace), addresses on both ends
  (a /30 in 169.254.0.0/16, link-local: traffic that never leaves this machine), links up.
  Names carry this process's id, so concurrent runs do not collide.
- ``cut()`` puts a ``blackhole`` queueing discipline on both ends: every packet, either way,
  is dropped without a trace - no RST, no ICMP, the interfaces stay up - as when a cable or a
  switch dies between two hosts. ``restore()`` removes them.
- The cluster is a `tests.pgcluster.PgCluster` (initdb as the ``postgres`` user, spare port)
  that also listens on this side's veth address and trusts the namespace's address.
- At the end, always (also at interpreter exit if a run is interrupted): the cluster is
  stopped and removed, then the namespace and the veth pair are deleted.
- Where namespaces cannot be made (not root, no ``ip`` - Debian package ``iproute2``, which
  ``.ci/install-partition-deps`` installs -, no permission, no ``blackhole`` qdisc) the test
  is skipped with the reason, except under CI (environment ``CI`` set): there it fails.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._prereq import missing
from tests.pgcluster import PgCluster, find_bindir

__all__ = ["Netns", "Partition", "PartitionCluster", "partition"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
    return result


class Netns:
    """A network namespace joined to this one by a veth pair."""

    def __init__(self, tag: int) -> None:
        self.name = f"romancy_part_{tag}"
        self.host_if, self.ns_if = f"rtp{tag}h", f"rtp{tag}n"  # <= 15 characters
        block = 4 * (tag % 12000)  # a /30 somewhere in 169.254.64.0 - 169.254.251.255
        self.host_addr = f"169.254.{64 + block // 256}.{block % 256 + 1}"
        self.ns_addr = f"169.254.{64 + block // 256}.{block % 256 + 2}"
        self.is_cut = False

    def create(self) -> None:
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                "netns", self.name)
            _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.name, "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_if)
            _ip("-n", self.name, "link", "set", self.ns_if, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def _tc(self, inside: bool, *args: str) -> None:
        cmd = ["tc", "qdisc", *args, "dev", self.ns_if if inside else self.host_if, "root"]
        if inside:
            cmd = self.exec_argv(cmd)
        if args[0] == "add":
            cmd.append("blackhole")
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")

    def cut(self) -> None:
        """Drop every packet both ways, silently."""
        self._tc(False, "add")
        self._tc(True, "add")
        self.is_cut = True

    def restore(self) -> None:
        self._tc(False, "del")
        self._tc(True, "del")
        self.is_cut = False

    def destroy(self) -> None:
        """Delete the veth pair and the namespace. Idempotent."""
        _ip("link", "del", self.host_if, check=False)  # its peer goes with it
        _ip("netns", "del", self.name, check=False)


class PartitionCluster(PgCluster):
    """A private cluster that also listens on ``extra_address`` and trusts ``client``."""

    def __init__(self, bindir: Path, root: Path, extra_address: str, client: str) -> None:
        super().__init__(bindir, root)
        self.extra_address = extra_address
        self.client = client

    def init(self) -> None:
        super().init()
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.client}/32 trust\n")

    def start(self, timeout: float = 60.0) -> float:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-W", "-o",
                  f"-c listen_addresses=127.0.0.1,{self.extra_address} -k {self.root} "
                  f"-p {self.port}", "start")
        return self.wait_accepting(timeout)


@dataclass
class Partition:
    netns: Netns
    cluster: PartitionCluster

    @property
    def dsn_from_namespace(self) -> str:
        return f"postgresql://postgres@{self.netns.host_addr}:{self.cluster.port}/postgres"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return self.netns.exec_argv(argv)

    def cut(self) -> None:
        self.netns.cut()

    def restore(self) -> None:
        self.netns.restore()


def _check_tools() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "partition tests need root (ip netns, veth, tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return (f"partition tests need `{tool}` (Debian package iproute2: "
                    "bash .ci/install-partition-deps)")
    if find_bindir() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql "
                "or set ROMANCY_PG_BINDIR")
    return None


@contextlib.contextmanager
def open_partition() -> Iterator[Partition]:
    """A namespace with its veth pair and a started cluster; all removed afterwards."""
    if (reason := _check_tools()) is not None:
        missing(reason)
    netns = Netns(os.getpid())
    atexit.register(netns.destroy)
    try:
        try:
            netns.create()
            netns.cut()  # probes that the blackhole qdisc exists here
            netns.restore()
        except RuntimeError as exc:
            missing(f"cannot make a network namespace with a veth pair here: {exc}")
        bindir = find_bindir()
        assert bindir is not None
        cluster = PartitionCluster(bindir, Path(tempfile.mkdtemp(prefix="romancy_part_")),
                                   netns.host_addr, netns.ns_addr)
        atexit.register(cluster.destroy)
        try:
            cluster.init()
            cluster.start()
            yield Partition(netns, cluster)
        finally:
            cluster.destroy()
            atexit.unregister(cluster.destroy)
    finally:
        netns.destroy()
        atexit.unregister(netns.destroy)


@pytest.fixture
def partition() -> Iterator[Partition]:
    """A network namespace and a private cluster reachable from it (see the module)."""
    with open_partition() as made:
        yield made
