"""`cdn up` wires latency measurements: `cdn client --beacon` times its edge and posts
a beacon, which the DNS server follows from Redis (docs/latency.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import ROOT

CDN = str(Path(sys.executable).parent / "cdn")


def test_cdn_client_beacon_reaches_the_dns_servers_figures(stack) -> None:
    cmd = [CDN, "client", "--run-dir", str(stack.config.run_dir), "--source", "127.0.3.1",
           "--beacon"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    beacon = next(line for line in done.stdout.splitlines() if line.startswith("beacon:"))
    assert "london" in beacon and beacon.endswith("HTTP 202"), beacon
    deadline = time.monotonic() + 120
    while True:
        with urllib.request.urlopen(f"http://{stack.config.http}/admin/latency", timeout=30) as r:
            doc = json.load(r)
        if doc["networks"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert doc["connected"] and doc["networks"] >= 1, doc
