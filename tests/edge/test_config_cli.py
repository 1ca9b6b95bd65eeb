"""Configuration files and flags, `edge serve --config` as a process, `edge make-models`
and `edge plan`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from edge.config import ConfigError, EdgeConfig, load_config


def test_yaml_and_toml_configs(tmp_path: Path):
    y = tmp_path / "edge.yaml"
    y.write_text("listen: 127.0.1.3:8000\nupstream: http://127.0.2.1:8000/\nl1-bytes: 8MiB\n"
                 "location: '35.68,139.69'\nregion: tokyo\nmax_batch: 16\n")
    c = load_config(y)
    assert c.host_port == ("127.0.1.3", 8000) and c.upstream == "http://127.0.2.1:8000"
    assert c.l1_bytes == 8 * 1024**2 and c.location == (35.68, 139.69) and c.max_batch == 16
    assert not c.is_origin
    t = tmp_path / "edge.toml"
    t.write_text('listen = "127.0.0.1:9000"\nl2_bytes = "2GB"\nl1 = "redis"\n'
                 'redis_url = "redis://127.0.0.1:6379/0"\n')
    c = load_config(t)
    assert c.l2_bytes == 2 * 1000**3 and c.l1 == "redis" and c.is_origin


@pytest.mark.parametrize("text, message", [
    ("colour: blue\n", "unknown option 'colour'"),
    ("l1_bytes: lots\n", "not a size"),
    ("listen: nowhere\n", "HOST:PORT"),
    ("l1: redis\n", "needs redis_url"),
    ("location: 91,0\n", "out of range"),
    ("upstream: ftp://x\n", "http:// URL"),
    ("miss_order: random\n", "miss_order must be one of upstream-first, local-first"),
    ("- a\n", "mapping"),
    ("a: [\n", "not valid yaml"),
])
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_flags_override_the_config_file(tmp_path: Path):
    from edge.cli import serve_config

    path = tmp_path / "e.yaml"
    path.write_text("region: a\ncapacity: 10\n")
    args = argparse.Namespace(command="serve", config=path, log_level="INFO", region="b",
                              capacity=None, listen="127.0.0.1:1234", admin_token_file=None)
    c = serve_config(args)
    assert (c.region, c.capacity, c.listen) == ("b", 10, "127.0.0.1:1234")
    assert EdgeConfig().replace(max_batch="8").max_batch == 8


def test_defaults_suit_many_nodes_on_one_machine():
    a = EdgeConfig().replace(listen="127.0.1.1:8000", upstream="127.0.2.1:8000")
    b = EdgeConfig().replace(listen="127.0.1.2:8000", upstream="127.0.2.1:8000")
    assert a.upstream == b.upstream == "http://127.0.2.1:8000"
    assert a.cache_dir == Path("var/edge-cache/127.0.1.1-8000") != b.cache_dir


def test_serve_with_a_config_file_and_bad_one(serve_process, models_dir, tmp_path: Path):
    conf = tmp_path / "origin.toml"
    conf.write_text(f'models_dir = "{models_dir}"\nregion = "origin-eu"\ncapacity = 8\n')
    proc = serve_process("--config", str(conf))
    with urllib.request.urlopen(proc.url + "/health") as r:
        doc = json.load(r)
    assert doc["region"] == "origin-eu" and doc["capacity"] == 8 and doc["models"]["ranker"] == "1"

    bad = tmp_path / "bad.yaml"
    bad.write_text("l1_bytes: many\n")
    out = subprocess.run([sys.executable, "-m", "edge.cli", "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "l1_bytes" in out.stderr and "not a size" in out.stderr


def test_make_models_is_deterministic(tmp_path: Path):
    for d in ("a", "b"):
        out = subprocess.run([sys.executable, "-m", "edge.cli", "make-models", str(tmp_path / d)],
                             capture_output=True, text=True, timeout=60, check=True)
        assert "ranker/1/model.onnx" in out.stdout
    for f in ("ranker/1/model.onnx", "embedder/1/model.onnx", "embedder/1/embeddings.npy"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_plan_prints_the_cheapest_sizes(tmp_path: Path):
    trace = tmp_path / "access.log"
    lines = [f"k{i % 50} 1000" for i in range(2000)] + [f"cold{i} 1000" for i in range(200)]
    trace.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "edge.cli", "plan", "--trace", str(trace),
                          "--l1-sizes", "16KiB,128KiB", "--l2-sizes", "128KiB,1MiB",
                          "--target", "0.85"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    assert "2200 requests, 250 distinct objects" in out.stdout
    assert "cheapest meeting the target 0.85: L1 16KiB, L2 128KiB: hit 0.8" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "edge.cli", "plan", "--prices", "1,2"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "three numbers" in bad.stdout
