"""`cdn up` as a user runs it: it starts everything, prints what runs where and what to
try, and Ctrl-C (SIGINT) stops every process it started; bad input is a clear error."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
import yaml

from .conftest import ROOT, stack_config

CDN = str(Path(sys.executable).parent / "cdn")
UP = str(ROOT / "bin" / "up")  # the README's quick start: bin/setup --runtime, then cdn up


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def edge_addresses(summary: str, name: str) -> tuple[str, str]:
    """(HTTP host:port, gRPC host:port) of an edge, as `cdn up`'s summary prints them."""
    line = next(x for x in summary.splitlines() if x.startswith(f"  {name} "))
    match = re.search(r"http://(\S+)\s+gRPC (\S+)$", line)
    assert match, line
    return match[1], match[2]


def grpc_and_rest_scores(grpc: str, http: str) -> bool:
    """The ranker's scores for one input, asked by Triton's gRPC client and by its HTTP
    client of the same edge, are the same (and the gRPC answer is the ranker's)."""
    x = np.linspace(0.0, 1.0, 32, dtype=np.float32).reshape(1, 32)
    client = tgrpc.InferenceServerClient(grpc)
    try:
        assert client.is_server_live() and client.is_model_ready("ranker")
        features = tgrpc.InferInput("features", [1, 32], "FP32")
        features.set_data_from_numpy(x)
        answer = client.infer("ranker", [features])
        assert answer.get_response(as_json=True)["model_name"] == "ranker"
        over_grpc = answer.as_numpy("score")
    finally:
        client.close()
    rest = thttp.InferenceServerClient(http)
    try:
        features = thttp.InferInput("features", [1, 32], "FP32")
        features.set_data_from_numpy(x)
        over_rest = rest.infer("ranker", [features]).as_numpy("score")
    finally:
        rest.close()
    return over_grpc.shape == (1, 1) and np.array_equal(over_grpc, over_rest)


def test_cdn_up_prints_the_stack_and_ctrl_c_stops_every_process(tmp_path):
    c = stack_config(tmp_path, members=["tokyo", "london"])
    proc = subprocess.Popen(
        [UP, "--zones", str(c.zones), "--run-dir", str(c.run_dir), "--dns", c.dns,
         "--http", c.http, "--origin", c.origin],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "CDN_ADMIN_TOKEN": c.admin_token},
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        out = "".join(lines)
        assert "The local CDN is up" in out, out
        for name in ("origin", "edge-tokyo", "edge-london", "geodns", "redis"):
            assert f"  {name} " in out
        assert f"Dashboard:   http://{c.http}/" in out
        assert f"dig @127.0.0.1 -p {c.dns.split(':')[1]} edge.cdn.example A +subnet=" in out
        assert f"cdn client --run-dir {c.run_dir} --city tokyo" in out
        http, grpc = edge_addresses(out, "edge-tokyo")
        assert grpc == f"127.0.1.1:{int(http.rsplit(':', 1)[1]) + 1}"
        assert grpc_and_rest_scores(grpc, http)
        state = json.loads((c.run_dir / "stack.json").read_text())
        pids = [ch["pid"] for ch in state["children"]]
        assert len(pids) == 4 and all(alive(p) for p in pids)
        assert alive(state["redis_pid"])
        children = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
        assert set(pids) < set(children)  # and the Redis server it started
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert rest.strip().endswith("stopped.")
    deadline = time.monotonic() + 60  # bounds a hang only
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in children)
    assert not (c.run_dir / "stack.json").exists()


def test_cdn_up_with_a_zone_without_the_pool_says_what_is_wrong(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "x.yaml").write_text("zone: x.example\nrecords: {www: {A: 192.0.2.1}}\n")
    done = subprocess.run([CDN, "up", "--zones", str(zones), "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "no zone file under" in done.stderr and "defines pool 'edges'" in done.stderr
    assert not (tmp_path / "run" / "stack.json").exists()


@pytest.mark.parametrize("taken", ["http", "grpc"])
def test_cdn_up_refuses_addresses_in_use_and_starts_nothing(tmp_path, taken):
    c = stack_config(tmp_path, members=["tokyo", "london"])
    zone = next(c.zones.glob("*.yaml")).read_text()
    port = int(zone.split("health_url: http://127.0.1.2:")[1].split("/")[0])
    port += 1 if taken == "grpc" else 0  # an edge's gRPC service: the next port
    with socket.socket() as other:  # another program already serves london's address
        other.bind(("127.0.1.2", port))
        other.listen()
        done = subprocess.run(
            [CDN, "up", "--zones", str(c.zones), "--run-dir", str(c.run_dir), "--dns", c.dns,
             "--http", c.http, "--origin", c.origin],
            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 1
    assert f"already in use: 127.0.1.2:{port} (TCP)" in done.stderr, done.stderr
    assert "another `cdn up` running?" in done.stderr
    assert not (c.run_dir / "logs").exists()  # nothing was started


def test_cdn_up_with_an_edge_on_port_65535_says_there_is_no_grpc_port(tmp_path):
    c = stack_config(tmp_path, members=["tokyo", "london"])
    zone = next(c.zones.glob("*.yaml"))
    port = int(zone.read_text().split("health_url: http://127.0.1.2:")[1].split("/")[0])
    zone.write_text(zone.read_text().replace(f"127.0.1.2:{port}/", "127.0.1.2:65535/"))
    done = subprocess.run([CDN, "up", "--zones", str(c.zones), "--run-dir", str(c.run_dir)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "port 65535 leaves no port for gRPC" in done.stderr, done.stderr
    assert not (c.run_dir / "stack.json").exists()


def test_cdn_up_refuses_an_edge_whose_http_port_is_another_edges_grpc_port(tmp_path):
    c = stack_config(tmp_path, members=["tokyo", "london"])
    zone = next(c.zones.glob("*.yaml"))
    doc = yaml.safe_load(zone.read_text())
    tokyo, london = sorted(doc["pools"]["edges"]["members"], key=lambda m: m["name"] != "tokyo")
    port = int(tokyo["health_url"].rsplit(":", 1)[1].split("/")[0])
    london["ipv4"] = tokyo["ipv4"]  # london beside tokyo, on tokyo's gRPC port
    london["health_url"] = f"http://{tokyo['ipv4']}:{port + 1}/health"
    zone.write_text(yaml.safe_dump(doc, sort_keys=False))
    done = subprocess.run(
        [CDN, "up", "--zones", str(c.zones), "--run-dir", str(c.run_dir), "--dns", c.dns,
         "--http", c.http, "--origin", c.origin],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"two of our servers would listen on {tokyo['ipv4']}:{port + 1}" in done.stderr, \
        done.stderr
    assert not (c.run_dir / "logs").exists()  # nothing was started


def start_up(c, *extra: str) -> tuple[subprocess.Popen, str]:
    """`bin/up` on the test config, read until its summary is printed."""
    proc = subprocess.Popen(
        [UP, "--zones", str(c.zones), "--run-dir", str(c.run_dir), "--dns", c.dns,
         "--http", c.http, "--origin", c.origin, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "CDN_ADMIN_TOKEN": c.admin_token},
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    return proc, "".join(lines)


def command_lines() -> dict[int, str]:
    """Every process's command line that this user can read, by PID."""
    out = {}
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out[int(path.parent.name)] = path.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            pass  # gone meanwhile
    return out


def test_cdn_up_clean_keeps_tokens_off_command_lines_and_cdn_down_stops_it(tmp_path):
    c = stack_config(tmp_path, members=["tokyo", "london"])
    # what an earlier run left: a published version, an override, a cache entry
    for leftover in ("models-v2/ranker/2/model.onnx", "cache/tokyo/l2/x", "store/pointer"):
        (c.run_dir / leftover).parent.mkdir(parents=True, exist_ok=True)
        (c.run_dir / leftover).write_text("old")
    (c.run_dir / "overrides.yaml").write_text("overrides: [{pool: edges, state: down}]\n")
    proc, out = start_up(c, "--clean")
    try:
        assert "The local CDN is up" in out, out
        assert f"removed {c.run_dir / 'models-v2'}" in out
        assert not (c.run_dir / "models-v2").exists()
        assert not (c.run_dir / "cache" / "tokyo" / "l2" / "x").exists()
        state = json.loads((c.run_dir / "stack.json").read_text())
        pids = [ch["pid"] for ch in state["children"]] + [state["redis_pid"], proc.pid]
        lines = command_lines()
        assert all(pid in lines for pid in pids)
        assert [pid for pid, line in lines.items() if c.admin_token in line] == []
        for secret in ("stack.json", "admin-token"):
            assert (c.run_dir / secret).stat().st_mode & 0o777 == 0o600, secret
        assert (c.run_dir / "admin-token").read_text().strip() == c.admin_token

        # a child that dies is started again (by the launcher, recorded in stack.json)
        edge = next(ch for ch in state["children"] if ch["name"] == "edge-tokyo")
        os.kill(edge["pid"], signal.SIGKILL)

        def new_pid() -> int | None:
            entry = next(ch for ch in json.loads((c.run_dir / "stack.json").read_text())
                         ["children"] if ch["name"] == "edge-tokyo")
            return entry["pid"] if entry["pid"] != edge["pid"] and alive(entry["pid"]) else None

        deadline = time.monotonic() + 120
        while new_pid() is None:
            assert time.monotonic() < deadline, "the killed edge was not started again"
            time.sleep(0.2)
        pids.append(new_pid())

        # another terminal stops it
        down = subprocess.run([CDN, "down", "--run-dir", str(c.run_dir)],
                              capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stderr
        assert f"stopped the stack of {c.run_dir} (cdn up, pid {proc.pid})" in down.stdout
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert "edge-tokyo exited (code -9); starting it again in 1 s" in rest
    assert "edge-tokyo started again (pid" in rest
    assert not any(alive(p) for p in pids)
    assert not (c.run_dir / "stack.json").exists()


def test_client_and_simulate_without_a_stack_say_how_to_start_one(tmp_path):
    for command in (["client", "--city", "tokyo"], ["simulate", "--requests", "10"]):
        done = subprocess.run([CDN, *command, "--run-dir", str(tmp_path / "run")],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode != 0
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"cdn {command[0]}: no stack is running (no {tmp_path / 'run' / 'stack.json'}); "
            "start one with bin/up (or `cdn up`)"]
    done = subprocess.run([CDN, "down", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0 and "no stack is running" in done.stderr
