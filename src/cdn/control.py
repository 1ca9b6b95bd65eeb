"""Kill and restart parts of a stack that another process (`cdn up`) started.

`cdn up` records its children in `run/stack.json` and starts again any that dies. A
command such as `cdn simulate --kill tokyo` marks the child held there (so the launcher
leaves it down), kills it by PID, and later lets it go: the launcher starts it again,
as its own child, and records the new PID.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cdn.processes import StartError, http_ready, same_process
from cdn.stack import STATE_FILE, read_state, set_held


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
        raise StartError(f"no process named {name!r} in {self.run_dir / STATE_FILE}")

    def kill(self, name: str) -> None:
        """SIGKILL the child, held down first so that `cdn up` does not start it again
        (only while its PID still runs the process recorded: else it is down already)."""
        entry = self._entry(read_state(self.run_dir), name)
        set_held(self.run_dir, entry["name"], True)
        if same_process(entry["pid"], entry.get("started")):
            try:
                os.kill(entry["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Let the launcher start the child again, and wait until it answers (a restarted
        edge says 503 `syncing` until it has caught up with the stream, which the health
        checker sees, not this)."""
        old = self._entry(read_state(self.run_dir), name)
        set_held(self.run_dir, old["name"], False)
        deadline = time.monotonic() + timeout
        where = old.get("where", "")
        ready = http_ready(f"{where}/health", below=600) if where.startswith("http://") \
            else None
        while time.monotonic() < deadline:
            entry = self._entry(read_state(self.run_dir), name)
            renewed = entry["pid"] != old["pid"] and same_process(entry["pid"],
                                                                  entry.get("started"))
            if renewed and (ready is None or ready()):
                return
            time.sleep(0.1)
        raise StartError(f"{old['name']} was not running again within {timeout:.0f} s "
                         f"(is its `cdn up` running?); see {old['log']}")
