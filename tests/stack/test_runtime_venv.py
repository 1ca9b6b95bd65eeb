"""The project in a fresh virtualenv with its runtime dependencies only (no dev extra):
`cdn up` starts the stack (geodns, the edges, the origin), `cdn client` resolves and
predicts through it, and a standalone `healthcheck` probes its edges. Run from outside
the repository, as an installed package would be."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cdn.redis_server import free_port
from cdn.stack import REDIS_PASSWORD_ENV, REDIS_PASSWORD_FILE

from .conftest import ROOT, stack_config

DEV_ONLY = ("pytest", "playwright", "hypothesis", "mypy", "mmdb_writer", "schemathesis")


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("runtime")
    # A regular (not editable) install, so the package data must be in the wheel too,
    # built from a copy so that the build leaves nothing in the repository.
    source = base / "source"
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def admin_health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)
    except OSError:
        return None


@pytest.mark.timeout(1800)
def test_runtime_dependencies_alone_run_every_program(runtime_venv: Path, tmp_path: Path):
    bin_ = runtime_venv
    found = subprocess.run(
        [str(bin_ / "python"), "-c", "import importlib.util as u, sys; "
         f"print([m for m in {DEV_ONLY!r} if u.find_spec(m)])"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]", f"dev tools in the runtime environment: {found}"

    c = stack_config(tmp_path, members=["tokyo", "london"])
    up = subprocess.Popen(
        [str(bin_ / "cdn"), "up", "--zones", str(c.zones), "--run-dir", str(c.run_dir),
         "--dns", c.dns, "--http", c.http, "--origin", c.origin],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    checker = None
    try:
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert "The local CDN is up" in "".join(lines), "".join(lines)
        state = json.loads((c.run_dir / "stack.json").read_text())
        programs = {Path(ch["argv"][0]).name: ch["argv"][0] for ch in state["children"]}
        assert programs == {"edge": str(bin_ / "edge"), "geodns": str(bin_ / "geodns")}

        # geodns answers the steered name, the edge it names predicts
        client = subprocess.run(
            [str(bin_ / "cdn"), "client", "--run-dir", str(c.run_dir), "--city", "tokyo"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert client.returncode == 0, client.stdout + client.stderr
        assert "edge:     tokyo" in client.stdout and "answered HTTP 200" in client.stdout

        # a standalone checker probes the same edges and publishes to the stack's Redis
        port = free_port()
        checker = subprocess.Popen(
            [str(bin_ / "healthcheck"), "--zones", str(c.zones), "--redis", state["redis"],
             "--vantage", "fresh-venv", "--http", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
            env={**os.environ, REDIS_PASSWORD_ENV:
                 (c.run_dir / REDIS_PASSWORD_FILE).read_text().strip()})
        url = f"http://127.0.0.1:{port}/admin/health"
        wait_for(lambda: (doc := admin_health(url)) is not None and len(doc["members"]) == 2
                 and all(m["status"] == "up" for m in doc["members"]), 120,
                 "the standalone healthcheck sees both edges up")
    finally:
        if checker is not None:
            checker.send_signal(signal.SIGTERM)
            checker.wait(timeout=60)
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=120)
    assert up.returncode == 0
