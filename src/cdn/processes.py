"""Child processes of the local stack: start one, wait until it is ready, stop it by PID.

Each child runs in its own session (process group) so that Ctrl-C in the launcher's
terminal reaches only the launcher, which then stops the children in reverse order:
SIGTERM, a grace period, SIGKILL. Output goes to one log file per child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdn.errors import CdnError


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, and reap it: only this PID.
    Shared by the launcher, the tests and the benchmarks."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class StartError(CdnError):
    """A child exited or never became ready; the message points at its log."""


def process_start(pid: int | None) -> str | None:
    """Who runs under `pid`: this boot's id and the moment the process started (clock
    ticks after boot, /proc/PID/stat). A later process that reuses the PID (after a
    crash or a reboot) does not share it. None when no process has this PID."""
    if not pid or pid <= 0:
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(") ", 1)[1].split()  # after the command name, which may hold ") "
    if fields[0] == "Z":  # exited, not yet reaped: nothing left to stop
        return None
    return f"{boot}:{fields[19]}"  # field 22 of stat: starttime


def same_process(pid: int | None, started: str | None) -> bool:
    """`pid` still runs the process whose `process_start` was recorded as `started`."""
    return started is not None and process_start(pid) == started


def http_ready(url: str, below: int = 500) -> Callable[[], bool]:
    """Ready when `url` answers any HTTP status below `below` (600: any answer at all)."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as resp:
                return resp.status < below
        except urllib.error.HTTPError as err:
            return err.code < below
        except (OSError, ValueError):
            return False

    return probe


@dataclass
class Child:
    """One long-running program of the stack."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool] | None = None
    where: str = ""  # what it serves, for the launcher's summary
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started: str | None = None  # process_start of the running PID, for other commands

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True,
            )
        finally:
            log.close()
        self.started = process_start(self.proc.pid)  # ours still: not reaped before

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                code = self.proc.returncode if self.proc else None
                raise StartError(f"{self.name} exited with code {code}; see {self.log_path}")
            if self.ready is None or self.ready():
                return
            time.sleep(0.1)
        raise StartError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; only this child's own PID."""
        stop_process(self.proc, grace)

    def kill(self) -> None:
        """Abrupt loss (SIGKILL), as when a machine dies: used to show failover."""
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
