"""Kill and restart parts of a stack that another process (`cdn up`) started.

`cdn up` records its children in `run/stack.json`; a command such as
`cdn simulate --kill tokyo` acts on them by PID and writes the new PID of a restarted
child back, so that the launcher also stops it on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cdn.processes import http_ready
from cdn.stack import STATE_FILE, read_state, write_state


class Controller(Protocol):
    def kill(self, name: str) -> None: ...

    def restart(self, name: str) -> None: ...


@dataclass
class StateFileController:
    run_dir: Path

    def _entry(self, state: dict, name: str) -> dict:
        for entry in state["children"]:
            if entry["name"] in (name, f"edge-{name}"):
                return entry
        raise KeyError(f"no process named {name!r} in {self.run_dir / STATE_FILE}")

    def kill(self, name: str) -> None:
        entry = self._entry(read_state(self.run_dir), name)
        try:
            os.kill(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restart(self, name: str) -> None:
        state = read_state(self.run_dir)
        entry = self._entry(state, name)
        with open(entry["log"], "ab") as log:
            proc = subprocess.Popen(
                entry["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **state.get("env", {})},
            )
        entry["pid"] = proc.pid
        write_state(self.run_dir, state)
        where = entry.get("where", "")
        if where.startswith("http://"):
            # Up once it answers: a restarted edge says 503 `syncing` until it has
            # caught up with the stream, which the health checker sees, not this.
            ready = http_ready(f"{where}/health", below=600)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not ready():
                time.sleep(0.1)
