"""Real Redis topologies on loopback for the tests: a Sentinel set and a Cluster.

Both are made of Debian's `redis-server` processes (the `redis_topology` fixture installs
it), each with its own free port and temporary directory, and are stopped by their PIDs.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from cdn.processes import stop_process
from cdn.redis_server import free_port, server_binary

HOST = "127.0.0.1"


def _wait(check, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last})")


def _replica_linked(client: redis.Redis) -> bool:
    return client.info("replication").get("master_link_status") == "up"


@dataclass
class _Process:
    port: int
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} on port {self.port} exited "
                                   f"with code {self.proc.returncode}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nothing listens on {HOST}:{self.port}")

    def stop(self) -> None:
        stop_process(self.proc, grace=5)
        self.proc = None


def _server_args(port: int, workdir: Path, password: str | None, *extra: str) -> list[str]:
    args = [server_binary(), "--bind", HOST, "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "no",
            "--repl-diskless-sync-delay", "0"]
    if password:
        args += ["--requirepass", password, "--masterauth", password]
    return args + list(extra)


@dataclass
class SentinelSet:
    """One primary, two replicas and three sentinels watching service `service`."""

    service: str = "geocdn"
    password: str | None = None
    servers: list[_Process] = field(default_factory=list)
    sentinels: list[_Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{auth}{hosts}/{self.service}/0"

    def start(self) -> SentinelSet:
        root = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
        primary_port = free_port()
        for i in range(3):
            port = primary_port if i == 0 else free_port()
            extra = [] if i == 0 else ["--replicaof", HOST, str(primary_port)]
            workdir = root / f"server{i}"
            workdir.mkdir()
            self.servers.append(_Process(port, _server_args(port, workdir, self.password,
                                                            *extra)))
        for server in self.servers:
            server.start()
        for i in range(3):
            port = free_port()
            conf = root / f"sentinel{i}.conf"
            lines = [f"bind {HOST}", f"port {port}", f"dir {root}",
                     f"sentinel monitor {self.service} {HOST} {primary_port} 2",
                     f"sentinel down-after-milliseconds {self.service} 1000",
                     f"sentinel failover-timeout {self.service} 5000",
                     "sentinel resolve-hostnames no"]
            if self.password:
                lines.append(f"sentinel auth-pass {self.service} {self.password}")
            conf.write_text("\n".join(lines) + "\n")
            self.sentinels.append(_Process(port, [server_binary(), str(conf), "--sentinel"]))
        for sentinel in self.sentinels:
            sentinel.start()
        _wait(lambda: self._sentinels_agree() and all(
            _replica_linked(redis.Redis(host=HOST, port=s.port, password=self.password))
            for s in self.servers[1:]), "the sentinels to see the replicas in sync")
        return self

    def _sentinels_agree(self) -> bool:
        for s in self.sentinels:
            client = redis.Redis(host=HOST, port=s.port, socket_timeout=10)
            info = client.sentinel_master(self.service)
            if int(info.get("num-slaves", 0)) < 2 or int(info.get("num-other-sentinels", 0)) < 2:
                return False
        return True

    def primary(self) -> _Process:
        client = redis.Redis(host=HOST, port=self.sentinels[0].port, socket_timeout=10)
        _host, port = client.sentinel_get_master_addr_by_name(self.service)
        return next(s for s in self.servers if s.port == int(port))

    def kill_primary(self) -> int:
        """SIGKILL the current primary; returns its port. Sentinels elect another."""
        old = self.primary()
        assert old.proc is not None
        old.proc.kill()
        old.proc.wait()
        _wait(lambda: self.primary().port != old.port and self._settled(),
              "the sentinels to fail over", 120)
        return old.port

    def _settled(self) -> bool:
        """Every sentinel names one primary, and sees it as up."""
        states = [redis.Redis(host=HOST, port=s.port, socket_timeout=10)
                  .sentinel_master(self.service) for s in self.sentinels]
        return (len({st["port"] for st in states}) == 1
                and all(st["flags"] == "master" for st in states))

    def stop(self) -> None:
        for p in self.sentinels + self.servers:
            p.stop()


@dataclass
class ClusterSet:
    """A Redis Cluster of three primaries, each with one replica, made by CLUSTER MEET and
    ADDSLOTSRANGE (no redis-cli needed)."""

    password: str | None = None
    nodes: list[_Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"{HOST}:{n.port}" for n in self.nodes[:3])
        return f"redis+cluster://{auth}{hosts}"

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host=HOST, port=port, password=self.password, socket_timeout=10)

    def _cluster_nodes(self, port: int) -> int:
        return len(self._client(port).execute_command("CLUSTER NODES"))

    def _state(self, port: int) -> str:
        info = self._client(port).execute_command("CLUSTER INFO")
        return str(info.get("cluster_state", ""))

    def start(self) -> ClusterSet:
        root = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        bus_ports = {}
        for i in range(6):
            port = free_port()
            bus_ports[port] = free_port()
            workdir = root / f"node{i}"
            workdir.mkdir()
            self.nodes.append(_Process(port, _server_args(
                port, workdir, self.password, "--cluster-enabled", "yes",
                "--cluster-port", str(bus_ports[port]),
                "--cluster-config-file", str(workdir / "nodes.conf"),
                "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0")))
        for node in self.nodes:
            node.start()
        first = self._client(self.nodes[0].port)
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER MEET", HOST, node.port, bus_ports[node.port])
        step = 16384 // 3
        for i, node in enumerate(self.nodes[:3]):
            end = 16383 if i == 2 else (i + 1) * step - 1
            self._client(node.port).execute_command("CLUSTER ADDSLOTSRANGE", i * step, end)
        _wait(lambda: all(self._cluster_nodes(n.port) == 6 for n in self.nodes),
              "every node to know the others")
        for primary, replica in zip(self.nodes[:3], self.nodes[3:], strict=True):
            node_id = self._client(primary.port).execute_command("CLUSTER MYID")
            if isinstance(node_id, bytes):
                node_id = node_id.decode()
            self._client(replica.port).execute_command("CLUSTER REPLICATE", node_id)
        _wait(lambda: all(self._state(n.port) == "ok" for n in self.nodes)
              and all(_replica_linked(self._client(n.port)) for n in self.nodes[3:]),
              "the cluster to be ok and every replica in sync")
        return self

    def owner_port(self, key: str, via: int) -> int:
        """The port of the primary that serves `key`, as the node on port `via` sees it."""
        client = RedisCluster(host=HOST, port=via, password=self.password)
        try:
            return int(client.get_node_from_key(key).port)
        finally:
            client.close()

    def kill_primary_of(self, key: str) -> int:
        """SIGKILL the primary that holds `key`'s slot and wait for its replica to take
        over; returns the killed node's port."""
        victim_port = self.owner_port(key, self.nodes[0].port)
        victim = next(n for n in self.nodes if n.port == victim_port)
        assert victim.proc is not None
        victim.proc.kill()
        victim.proc.wait()
        live = next(n for n in self.nodes if n is not victim)
        _wait(lambda: self._state(live.port) == "ok"
              and self.owner_port(key, live.port) != victim_port,
              f"a replica to take over {key!r}", 60)
        return victim_port

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
