"""`cdn down` after its `cdn up` is gone (a crash, a reboot): it stops the processes
recorded in run/stack.json, but only while each PID still runs the very process that
was recorded; a PID that now belongs to another program is reported and left alone."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from cdn.processes import process_start, stop_process
from cdn.stack import STATE_FILE, write_state

CDN = str(Path(sys.executable).parent / "cdn")


def test_cdn_down_stops_recorded_processes_and_skips_a_reused_pid(tmp_path):
    ours = subprocess.Popen(["sleep", "600"])  # a child that outlived its cdn up
    stranger = subprocess.Popen(["sleep", "600"])  # another program, on recorded PIDs
    gone = subprocess.Popen(["true"])
    gone.wait()
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    try:
        write_state(tmp_path, {
            # the launcher's PID was taken over after it died: not cdn up any more
            "launcher_pid": stranger.pid, "launcher_started": f"{boot}:1",
            "redis_pid": gone.pid, "redis_started": f"{boot}:2",
            "children": [
                {"name": "edge-tokyo", "pid": ours.pid, "started": process_start(ours.pid)},
                # recorded before a reboot: the same number, another process now
                {"name": "edge-london", "pid": stranger.pid,
                 "started": "0f0f0f0f-0000-4000-8000-000000000000:4242"},
            ],
        })
        down = subprocess.run([CDN, "down", "--run-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert ours.wait(timeout=60) == -signal.SIGTERM
        assert stranger.poll() is None, "cdn down signalled a process it did not start"
        assert down.stdout.splitlines() == [
            f"stopped 1 processes left by a `cdn up` that is gone ({tmp_path})",
            f"skipped edge-london (pid {stranger.pid}): that PID now runs another process",
        ]
        assert not (tmp_path / STATE_FILE).exists()
    finally:
        stop_process(ours)
        stop_process(stranger)

