"""docs/distribution.md's shell commands, run as the page shows them: its origin and edge
(on a real Redis, addresses moved to free ports), then every operator command against
them, in the page's order."""

from __future__ import annotations

import json
import re
import shutil

from cdn.redis_server import free_port
from doc_commands import page, run, run_block, sh_blocks, shell_env, substitute, workdir

TOKEN = "docs-token"


def test_the_origin_edge_and_operator_commands_run_as_shown(tmp_path, redis_server):
    servers, operator = sh_blocks(page("docs/distribution.md"))[:2]
    cwd = workdir(tmp_path)
    env = shell_env()
    # what the page takes as given: example models, the admin token, a new model file
    run("edge make-models var/models", cwd, env)
    run("edge make-models --hidden 32 var/models-v2", cwd, env)
    shutil.copy(cwd / "var/models-v2/ranker/1/model.onnx", cwd / "model.onnx")
    (cwd / "var/admin-token").write_text(TOKEN)
    origin, edge = f"127.0.2.1:{free_port('127.0.2.1')}", f"127.0.1.1:{free_port('127.0.1.1')}"
    moved = {"redis://127.0.0.1:6379/0": redis_server.url, "127.0.2.1:8000": origin,
             "127.0.1.1:8000": edge, "EDGE_ADMIN_TOKEN=...": f"EDGE_ADMIN_TOKEN={TOKEN}"}
    lines = [substitute(line, moved) for line in servers + operator]
    with run_block(lines, cwd, env) as results:
        out = {line.split(" $O")[0].split(" --")[0]: r.stdout for line, r in results.items()}
    published = out["edge publish model.onnx"]
    assert published.startswith("ranker 2\n") and "int8: " in published, published
    assert "staged; announced: True" in published, published
    assert json.loads(out["edge models activate ranker 2"])["pointer"]["current"] == "2"
    assert json.loads(out["edge models rollback ranker"])["pointer"]["current"] == "1"
    listed = out["edge models list"]
    assert "ranker: current 1" in listed and re.search(r"^ +2 .* \+int8$", listed, re.M), listed
    assert json.loads(out["edge purge"])["announced"] is True
    table = out["edge rollout"].splitlines()
    assert table[0].split()[:4] == ["edge", "mode", "ready", "lag"], table
    nodes = {row.split()[0].split("-")[0]: row.split() for row in table[1:-1]}
    assert set(nodes) == {"eu", "origin"} and all(r[1:4] == ["stream", "yes", "0"]
                                                  for r in nodes.values()), table
